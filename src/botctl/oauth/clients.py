"""The OAuth client model: each vendor's authorization-server defaults (`vendors()`, declared by the
connectors as `Connector.oauth_client`) and `OAuthApp`, a client fully resolved for one connection (defaults + a registered app's overrides + the tenant filled
in), with the URL checks every endpoint and redirect URI passes. Imports nothing else of the package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botctl.connectors.base import VendorOAuth
from botctl.errors import UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.connectors.base import Connector

TOKEN_AUTH_METHODS = ("client_secret_post", "client_secret_basic", "none")
DEFAULT_REDIRECT_PATH = "/callback"


@dataclass(frozen=True)
class OAuthApp:
    """An OAuth client, fully resolved for one connection: defaults + overrides + the tenant filled in."""

    connector: str
    source: str  # "workspace" | "global" | "sandbox"
    client_id: str
    client_secret: Secret | None
    authorize_url: str
    token_url: str
    revoke_url: str | None
    device_url: str | None
    metadata_url: str | None
    redirect_uri: str | None  # fixed redirect URI; None: http://127.0.0.1:<ephemeral>/callback
    token_auth: str
    revoke_auth: str
    scopes: tuple[str, ...]
    pkce: bool
    scope_separator: str = " "
    token_params: tuple[tuple[str, str], ...] = ()
    scope_in_token_request: bool = False
    issuer: str | None = None
    iss_required: bool = False


def vendors() -> dict[str, VendorOAuth]:
    """Connector name -> the authorization-server defaults that connector declares (`Connector.oauth_client`)."""
    from botctl.connectors import registry  # the eight connector modules: only when OAuth is used

    return registry.oauth_clients()


def vendor(connector: str) -> VendorOAuth:
    found = vendors().get(connector)
    if found is None:
        names = ", ".join(vendors())
        raise UsageError(
            f"{connector} does not connect with OAuth.", hint=f"OAuth connectors: {names}.", code="not_oauth"
        )
    return found


def _is_loopback_host(host: str | None) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


def check_endpoint(url: str, what: str, *, placeholders: tuple[str, ...] = ()) -> str:
    """An authorization-server URL: https (plain http only to a loopback host), no user info or fragment."""
    from urllib.parse import urlsplit

    probe = url
    for name in placeholders:
        probe = probe.replace("{" + name + "}", "tenant")
    try:
        parts = urlsplit(probe)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"{what} {url!r} is not a valid URL.") from None
    if "{" in probe or "}" in probe:
        raise UsageError(
            f"{what} {url!r} has an unknown placeholder.",
            hint=f"Placeholders allowed here: {', '.join('{' + p + '}' for p in placeholders) or 'none'}.",
        )
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise UsageError(f"{what} must be an https:// URL, not {url!r}.")
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        raise UsageError(f"{what} must use https:// (plain http only to 127.0.0.1 / localhost): {url!r}.")
    if parts.username or parts.password or parts.fragment:
        raise UsageError(f"{what} must not carry user info or a fragment: {url!r}.")
    return url


def check_redirect_uri(uri: str) -> str:
    """A loopback redirect (RFC 8252 §7.3): http://127.0.0.1[:port]/path (localhost only if a vendor insists)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise UsageError(f"--redirect-uri {uri!r} is not a valid URL.") from None
    if parts.scheme != "http" or not _is_loopback_host(parts.hostname):
        raise UsageError(
            f"--redirect-uri must be a loopback URL like http://127.0.0.1:8765/callback, not {uri!r}.",
            hint="botctl listens on 127.0.0.1 for the redirect (RFC 8252 §7.3).",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError("--redirect-uri must not carry a query, fragment or user info.")
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--redirect-uri has an invalid port: {uri!r}.")
    host = "[::1]" if parts.hostname == "::1" else parts.hostname
    return f"http://{host}{':' + str(port) if port else ''}{parts.path or '/'}"


def split_scopes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = re.split(r"[\s,]+", value)
    else:
        return None
    return tuple(dict.fromkeys(s for s in items if s))


def effective_app(
    connector: Connector,
    *,
    source: str,
    client_id: str,
    client_secret: Secret | None,
    settings: Mapping[str, Any],
    config: Mapping[str, str],
) -> OAuthApp:
    """Defaults the connector declares, overridden by `settings`, with the connection's tenant filled in."""
    v = vendor(connector.name)

    def fill(url: str | None, what: str) -> str | None:
        if not url:
            return None
        check_endpoint(url, what, placeholders=connector.config_fields)
        try:
            return url.format(**{k: config[k] for k in connector.config_fields if k in config})
        except KeyError as exc:
            raise UsageError(
                f"{connector.vendor} needs --{str(exc.args[0]).replace('_', '-')} for its OAuth URLs."
            ) from None

    token_auth = settings.get("token_auth") or (v.token_auth if client_secret else "none")
    return OAuthApp(
        connector=connector.name,
        source=source,
        client_id=client_id,
        client_secret=client_secret,
        authorize_url=fill(settings.get("authorize_url") or v.authorize_url, "the authorize URL") or "",
        token_url=fill(settings.get("token_url") or v.token_url, "the token URL") or "",
        revoke_url=fill(settings.get("revoke_url") or v.revoke_url, "the revoke URL"),
        device_url=fill(settings.get("device_url") or v.device_url, "the device URL"),
        metadata_url=fill(settings.get("metadata_url") or v.metadata_url, "the metadata URL"),
        redirect_uri=settings.get("redirect_uri"),
        token_auth=token_auth,
        revoke_auth=token_auth if token_auth == "none" else (settings.get("token_auth") or v.revoke_auth),
        scopes=split_scopes(settings.get("scopes")) or connector.scopes,
        pkce=v.pkce,
        scope_separator=v.scope_separator,
        token_params=v.token_params,
        scope_in_token_request=v.scope_in_token_request,
    )


def with_redirect_port(app_cfg: OAuthApp, port: int) -> OAuthApp:
    if not 1 <= port <= 65535:
        raise UsageError(f"--redirect-port must be 1-65535, not {port}.")
    from urllib.parse import urlsplit

    path = urlsplit(app_cfg.redirect_uri).path if app_cfg.redirect_uri else DEFAULT_REDIRECT_PATH
    return replace(app_cfg, redirect_uri=f"http://127.0.0.1:{port}{path or '/'}")
