"""The sandbox's static credentials: each vendor's stand-ins for its static-credential options.

Each vendor module declares its own (`Vendor.static_credentials`, `Vendor.describe_credentials`,
with the values next to them: sandbox-only, they open nothing but this local fake, and each has the
prefix/shape of the real thing so prefix checks in clients behave); this module installs the vendors
it is given (the sandbox's, never a list of its own) in the token registry and builds `GET /_sandbox/credentials`, vendor by vendor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import seed
from .tokens import TokenRegistry

if TYPE_CHECKING:
    from .vendors.base import Vendor

TENANT = seed.TENANT


@dataclass(frozen=True)
class StaticCredential:
    token: str
    scopes: tuple[str, ...]
    tenant: bool = False  # bound to the seeded tenant (vendors with a tenant in the path)
    subject: Mapping[str, Any] = field(default_factory=dict)


def install(registry: TokenRegistry, vendors: Iterable[Vendor]) -> None:
    """Put every static credential of `vendors` in the registry (at start-up and on reset)."""
    for vendor in vendors:
        for c in vendor.static_credentials():
            registry.add_static(
                vendor.name, c.token, c.scopes, tenant=TENANT if c.tenant else None, subject=dict(c.subject)
            )


def describe(base_url: str, *, vendors: Iterable[Vendor], device_flow: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON of `GET /_sandbox/credentials`; `base_url` is the sandbox's own origin.

    Per vendor: where it is (`base_path`, `base_url`, its tenant parameter), its credentials, how
    a botctl connection reaches it (`connect`: the settings and the credential fields to store),
    and for a vendor with an OAuth server an `oauth` block: its endpoints and registered clients
    (`device_flow`: vendors with the sandbox's device flow switched on)."""
    from .oauth import profiles

    enabled = set(device_flow)
    out: dict[str, Any] = {"tenant": TENANT}
    for vendor in vendors:
        path = vendor.base_path(TENANT)
        block: dict[str, Any] = {"base_path": path, "base_url": base_url.rstrip("/") + path}
        if vendor.tenant_param:
            block[vendor.tenant_param] = TENANT
        block.update(vendor.describe_credentials())
        block["connect"] = {
            "config": dict(vendor.connect_config),
            "credential": vendor.connect_credential(block),
            "limited": vendor.connect_credential(block, limited=True),
        }
        if vendor.oauth_profile is not None:
            block["oauth"] = profiles.describe(base_url, vendor, device_enabled=vendor.name in enabled)
        out[vendor.name] = block
    return out
