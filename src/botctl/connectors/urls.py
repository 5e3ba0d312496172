"""Connection config → base URL, for the real vendor and for the sandbox.

Config values end up inside a URL that will carry a credential, so each one is checked against
the shape its placeholder allows: a tenant label (`subdomain`, `domain`, `shop`) must be a single
DNS label — `evil.example/x#` would otherwise send the token to evil.example — and a site URL
(`site`, `base_url`) must be a bare http(s) URL without user info, query or fragment.

Sandbox paths (`Connector.sandbox_path`) use the same placeholders, plus one derived one:
`{store}` for WooCommerce, whose config is a full site URL. `{store}` is the first label of the
site's host (`https://acme.example.com/shop` → `acme`), which is how the sandbox names tenants.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import urlsplit

from botctl.connectors.base import ActionError, Connector

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Suffixes people paste along with the tenant name; stripped before the label check.
_SUFFIXES = {
    "subdomain": ".zendesk.com",
    "domain": ".freshdesk.com",
    "shop": ".myshopify.com",
}
_URL_FIELDS = frozenset({"site", "base_url"})
# Defaults for optional config fields (Cal.com's API host, overridden for self-hosted Cal.com).
DEFAULTS: dict[str, dict[str, str]] = {"calcom": {"base_url": "https://api.cal.com"}}


def normalize_config(connector: Connector, config: Mapping[str, str]) -> dict[str, str]:
    """The connector's config fields, defaulted, trimmed and checked; raises ActionError('invalid_params')."""
    out = dict(DEFAULTS.get(connector.name, {}))
    out.update({k: v for k, v in config.items() if k in connector.config_fields and v})
    for name in connector.config_fields:
        value = str(out.get(name, "")).strip()
        if not value:
            raise ActionError("invalid_params", f"{connector.vendor} needs --{name.replace('_', '-')}.")
        if name in _URL_FIELDS:
            out[name] = _check_url(connector, name, value)
        else:
            out[name] = _check_label(connector, name, value)
    return out


def base_url_for(connector: Connector, config: Mapping[str, str]) -> str:
    """The real vendor base URL for this config, e.g. https://acme.zendesk.com."""
    return _fill(connector.base_url, normalize_config(connector, config)).rstrip("/")


def sandbox_url_for(connector: Connector, config: Mapping[str, str], sandbox_url: str) -> str:
    """The sandbox stand-in for `base_url_for`: `{sandbox}{sandbox_path}` with the same config."""
    values = normalize_config(connector, config)
    if "site" in values:
        values.setdefault("store", (urlsplit(values["site"]).hostname or "").split(".")[0])
    return sandbox_url.rstrip("/") + _fill(connector.sandbox_path, values).rstrip("/")


def _fill(template: str, values: Mapping[str, str]) -> str:
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    missing = [f for f in fields if f not in values]
    if missing:
        raise ActionError("invalid_params", f"missing connection setting: {', '.join(missing)}")
    return template.format(**{f: values[f] for f in fields})


def _check_label(connector: Connector, name: str, value: str) -> str:
    v = value.lower()
    for prefix in ("https://", "http://"):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    v = v.rstrip("/")
    suffix = _SUFFIXES.get(name)
    if suffix and v.endswith(suffix):
        v = v[: -len(suffix)]
    if not _LABEL.match(v):
        raise ActionError(
            "invalid_params", f"{connector.vendor}: --{name} must be a name like 'acme', not {value!r}."
        )
    return v


def _check_url(connector: Connector, name: str, value: str) -> str:
    parts = urlsplit(value)
    flag = "--" + name.replace("_", "-")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ActionError(
            "invalid_params", f"{connector.vendor}: {flag} must be a URL like https://shop.example."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ActionError(
            "invalid_params", f"{connector.vendor}: {flag} must not carry user info, a query or a fragment."
        )
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"
