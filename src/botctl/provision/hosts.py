"""Hosts a credential would go to that no connector fixes (a self-hosted site, an OAuth endpoint
override, a sandbox URL): found while the file is checked, then allowed (`--allow-host`), confirmed
at a terminal, or refused -- before a single environment variable is read."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botctl.errors import UsageError
from botctl.provision.errors import HostNotAllowed

if TYPE_CHECKING:
    from botctl.connectors.base import ConfigField, Connector

ENDPOINTS = ("authorize_url", "token_url", "revoke_url", "device_url", "metadata_url")  # OAuth app overrides
Allow = Sequence[tuple[str, int | None]]  # parsed --allow-host values


@dataclass(frozen=True)
class HostUse:
    """A host the file sends a credential to that no connector fixes, and where the file says so."""

    host: str
    port: int | None
    explicit_port: bool
    where: str  # "FILE:LINE: key.path", or "BOTCTL_SANDBOX"
    allowed: bool = False

    @property
    def flag_value(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}" if self.explicit_port and self.port is not None else h

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "where": self.where, "allowed": self.allowed}


def parse_allow_host(value: str) -> tuple[str, int | None]:
    """`--allow-host` value: HOST, HOST:PORT, [V6]:PORT or a URL (its host and port). UsageError otherwise."""
    v = value.strip()
    try:
        parts = urlsplit(v if "://" in v else "//" + v)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or parts.path or parts.query or parts.fragment or parts.username or " " in v:
        raise UsageError(
            f"--allow-host {value!r} is not a host name.",
            hint="Give HOST or HOST:PORT, e.g. --allow-host shop.example.com.",
            code="invalid_allow_host",
        )
    return host.lower(), port


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_use(url: str, where: str) -> HostUse | None:
    """The host (and port, defaulted by scheme) a URL sends to; None when it names no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return HostUse(parts.hostname.lower(), port or default, port is not None, where)


def url_settings(connector: Connector) -> list[ConfigField]:
    """The connector's settings that choose the host its credential goes to: every `url` setting it
    declares, whatever its name (a `label` only fills a host the connector fixes)."""
    return [f for f in connector.config if f.kind == "url"]


def vendor_hosts(connector: Connector) -> set[str]:
    """The hosts a connector's OAuth defaults and API live on (placeholders kept, e.g. {subdomain}.zendesk.com)."""
    from botctl import oauth

    v = oauth.vendor(connector.name)
    urls_ = [getattr(v, k, None) for k in ENDPOINTS] + [connector.base_url]
    return {(urlsplit(u).hostname or "").lower() for u in urls_ if u and u.startswith("https://")}


def mark_allowed(uses: Sequence[HostUse], allow: Allow) -> list[HostUse]:
    """Each use, allowed when an --allow-host value covers it (a value without a port covers every port)."""
    return [
        replace(u, allowed=any(h == u.host and (p is None or p == u.port) for h, p in allow)) for u in uses
    ]


def refusals(uses: Sequence[HostUse]) -> list[str]:
    """One problem line per use nobody allowed."""
    return [
        f"{u.where}: would send a credential to {u.flag_value}, a host the connector does not fix; "
        f"pass --allow-host {u.flag_value} if it is yours."
        for u in uses
        if not u.allowed
    ]


def confirm_or_refuse(uses: list[HostUse], confirm: Callable[[list[HostUse]], bool] | None) -> list[HostUse]:
    """The uses, all allowed once `confirm` (a terminal's yes/no) says yes; HostNotAllowed otherwise."""
    blocked = [u for u in uses if not u.allowed]
    if not blocked:
        return uses
    if confirm is not None and confirm(blocked):
        return [replace(u, allowed=True) for u in uses]
    raise HostNotAllowed(
        refusals(uses),
        hint="Nothing was read or sent. `botctl apply --dry-run` lists every such "
        "host; allow yours with --allow-host HOST.",
    )
