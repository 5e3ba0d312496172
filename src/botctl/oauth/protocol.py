"""Talking to an authorization server: the token, device and revocation requests (RFC 6749, RFC
8628, RFC 7009), RFC 8414 metadata, the capped reads, and what each kind of answer means.

Every answer is read up to 1 MiB (`MAX_RESPONSE_BYTES`) and within a total deadline; more is refused
unread. A definitive OAuth error is a `ServerError`; no usable answer is an `EndpointError`, which says
whether the request may have been sent and whether the server may have acted on it (a rotation we did
not learn about). Server-supplied text is cleaned of our own secrets and control characters
(`clean_text`) before it reaches output or audit. The exit statuses 24-26 (README "Exit codes") are
the three errors below.

httpx is imported inside functions only (start-up time is a feature).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError, CredentialRejected, Transient, UsageError
from botctl.oauth.clients import OAuthApp, check_endpoint, split_scopes
from botctl.secret import Secret

if TYPE_CHECKING:
    import httpx

EXIT_DENIED = 24
EXIT_MISMATCH = 25
EXIT_TIMEOUT = 26

REQUEST_TIMEOUT_S = 20.0
MAX_RESPONSE_BYTES = 1 << 20  # token, device, revocation, metadata and sandbox answers: 1 MiB at most
TOTAL_DEADLINE_S = 30.0  # one request to an authorization server, connect to last byte (a trickle ends here)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


# -- errors ------------------------------------------------------------------------------------------


class AuthorizationDenied(BotctlError):
    """The user (or the server) refused the authorization: `access_denied`."""

    code = "access_denied"
    exit_code = EXIT_DENIED


class CallbackRejected(BotctlError):
    """The redirect back to botctl failed a check: state mismatch or replay, iss mismatch."""

    code = "state_mismatch"
    exit_code = EXIT_MISMATCH


class AuthorizationTimeout(BotctlError):
    """Nobody approved in time: the loopback listener timed out, or the device code expired."""

    code = "timeout"
    exit_code = EXIT_TIMEOUT


class ResponseTooLarge(Exception):
    """An answer longer than the cap; the rest of it is never read."""


async def read_capped(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body of a streamed response, refusing (ResponseTooLarge) past `limit` bytes: a declared
    Content-Length over it is refused before reading, an undeclared or lying one when it crosses it."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise ResponseTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _json_body(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None


class ServerError(Exception):
    """A definitive OAuth error answer (RFC 6749 §5.2): the server processed the request and said no."""

    def __init__(self, error: str, description: str, status: int, interval: int | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.interval = interval


class EndpointError(Exception):
    """No usable answer. `sent`: the request may have reached the server. `unknown`: the server may
    have acted on it (a rotation may have happened) without us learning the result."""

    def __init__(
        self,
        message: str,
        *,
        sent: bool,
        unknown: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent
        self.unknown = unknown
        self.status = status
        self.retry_after = retry_after


def clean_text(text: str, limit: int = 200, *, secrets_: tuple[str, ...] = ()) -> str:
    """Server-supplied text for a terminal, a log or an audit record: none of our secrets (a server
    may echo the token it refuses), no control characters, one line, bounded."""
    text = str(text)
    for value in sorted((v for v in secrets_ if v and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:limit]


_SECRET_PARAMS = ("refresh_token", "code", "code_verifier", "client_secret", "device_code", "token")


def _secret_values(app_cfg: OAuthApp, data: Mapping[str, str]) -> tuple[str, ...]:
    values = [v for k, v in data.items() if k in _SECRET_PARAMS]
    if app_cfg.client_secret is not None:
        values.append(app_cfg.client_secret.reveal())
    return tuple(values)


def callback_error(app_cfg: OAuthApp, error: str, description: str) -> BotctlError:
    error, desc = clean_text(error, 60), clean_text(description)
    said = f" ({desc})" if desc else ""
    if error == "access_denied":
        return AuthorizationDenied(
            f"the authorization was denied{said}; nothing was stored.",
            hint="Run the connect command again and approve botctl.",
        )
    if error in ("server_error", "temporarily_unavailable"):
        return Transient(
            f"the authorization server failed: {error}{said}.",
            hint="Try again in a moment.",
            code="upstream_unavailable",
        )
    if error in ("invalid_scope",):
        return UsageError(
            f"the authorization server refused the scopes {' '.join(app_cfg.scopes)!r}{said}.",
            hint=f"Set the scopes your app may request: botctl oauth-app set {app_cfg.connector} "
            "... --scopes '...'",
            code=error,
        )
    return CredentialRejected(
        f"the authorization server refused the request: {error}{said}.",
        hint="Check the OAuth app (client id, redirect URI): botctl oauth-app list",
        code=error or "oauth_error",
    )


# -- talking to the authorization server -----------------------------------------------------------------


def http_client(timeout: float = REQUEST_TIMEOUT_S) -> httpx.AsyncClient:
    import httpx

    # No redirects (a token endpoint that redirects is refused), no proxies from the environment.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        follow_redirects=False,
        trust_env=False,
        headers={"Accept": "application/json", "User-Agent": "botctl/0.1"},
    )


def _client_auth(app_cfg: OAuthApp, data: dict[str, str], method: str) -> dict[str, str]:
    """Add client authentication (RFC 6749 §2.3.1) to a form; returns extra headers."""
    from urllib.parse import quote_plus

    if method == "client_secret_basic" and app_cfg.client_secret:
        pair = f"{quote_plus(app_cfg.client_id)}:{quote_plus(app_cfg.client_secret.reveal())}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    data["client_id"] = app_cfg.client_id
    if method == "client_secret_post" and app_cfg.client_secret:
        data["client_secret"] = app_cfg.client_secret.reveal()
    return {}


async def _post(
    url: str,
    data: dict[str, str],
    headers: dict[str, str],
    *,
    what: str,
    client: httpx.AsyncClient | None = None,
) -> tuple[int, Any, httpx.Headers]:
    import asyncio

    import httpx

    from botctl.connectors.http import parse_retry_after

    own = client is None
    http = client or http_client()
    try:
        async with (
            asyncio.timeout(TOTAL_DEADLINE_S),
            http.stream("POST", url, data=data, headers=headers) as response,
        ):
            raw = await read_capped(response)
    except ResponseTooLarge:
        # Sent and answered, but not readable within bounds: the server may have acted (rotated a token).
        raise EndpointError(
            f"the {what} sent an answer over 1 MiB; botctl did not read it", sent=True, unknown=True
        ) from None
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        from botctl.connectors.http import where_failed

        raise EndpointError(
            f"could not reach the {what} at {where_failed(httpx.URL(url), exc)}", sent=False, unknown=False
        ) from None
    except (httpx.TimeoutException, TimeoutError):
        raise EndpointError(f"the {what} did not answer in time", sent=True, unknown=True) from None
    except httpx.HTTPError as exc:
        raise EndpointError(
            f"the {what} dropped the connection ({type(exc).__name__})", sent=True, unknown=True
        ) from None
    finally:
        if own:
            await http.aclose()
    body = _json_body(raw)
    if response.status_code == 429:
        raise EndpointError(
            f"the {what} is rate limiting botctl",
            sent=True,
            unknown=False,
            status=429,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    return response.status_code, body, response.headers


async def token_request(
    app_cfg: OAuthApp, data: dict[str, str], *, url: str | None = None, what: str = "token endpoint"
) -> dict[str, Any]:
    """POST to the token (or device) endpoint; the JSON body on 200, else ServerError / EndpointError."""
    data = dict(data)
    headers = _client_auth(app_cfg, data, app_cfg.token_auth)
    status, body, _ = await _post(url or app_cfg.token_url, data, headers, what=what)
    if status == 200 and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str) and 400 <= status < 500:
        interval = body.get("interval")
        hidden = _secret_values(app_cfg, data)
        raise ServerError(
            clean_text(body["error"], 60, secrets_=hidden),
            clean_text(str(body.get("error_description") or ""), secrets_=hidden),
            status,
            interval if isinstance(interval, int) and not isinstance(interval, bool) else None,
        )
    if status == 401:
        raise ServerError("invalid_client", "", status)
    if status == 200:
        raise EndpointError(f"the {what} sent a malformed answer", sent=True, unknown=True, status=status)
    if 300 <= status < 400:
        raise EndpointError(
            f"the {what} answered with a redirect (HTTP {status}); botctl does not follow those",
            sent=True,
            unknown=True,
            status=status,
        )
    # A 5xx may come after the server acted (e.g. rotated the refresh token): the outcome is unknown.
    raise EndpointError(f"the {what} failed (HTTP {status})", sent=True, unknown=status >= 500, status=status)


@dataclass(frozen=True)
class TokenSet:
    access_token: Secret
    refresh_token: Secret | None
    expires_in: float | None
    scopes: tuple[str, ...] | None


def token_set(body: Mapping[str, Any], what: str = "token endpoint") -> TokenSet:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise EndpointError(f"the {what} answered without an access token", sent=True, unknown=True)
    token_type = body.get("token_type")
    if token_type is not None and str(token_type).lower() != "bearer":
        raise EndpointError(
            f"the {what} issued a {clean_text(str(token_type), 20)!r} token; botctl uses bearer tokens",
            sent=True,
            unknown=True,
        )
    refresh = body.get("refresh_token")
    expires = body.get("expires_in")
    try:
        expires_in = float(expires) if expires is not None and not isinstance(expires, bool) else None
    except (TypeError, ValueError):
        expires_in = None
    if expires_in is not None and expires_in < 0:
        expires_in = 0.0
    return TokenSet(
        Secret(access),
        Secret(refresh) if isinstance(refresh, str) and refresh else None,
        expires_in,
        split_scopes(body.get("scope")),
    )


def exchange_error(exc: ServerError | EndpointError, vendor_name: str, step: str) -> BotctlError:
    if isinstance(exc, EndpointError):
        return Transient(
            f"{step}: {exc.message}.", hint="Check the network and try again.", code="upstream_unavailable"
        )
    said = f" ({exc.description})" if exc.description else ""
    if exc.error in ("invalid_client", "unauthorized_client"):
        return CredentialRejected(
            f"{vendor_name} refused botctl's OAuth client: {exc.error}{said}.",
            hint="Check the client id and secret: botctl oauth-app list / oauth-app set.",
            code=exc.error,
        )
    return CredentialRejected(
        f"{step}: {vendor_name} answered {exc.error}{said}.",
        hint="Run the connect command again.",
        code=exc.error,
    )


async def fetch_metadata(url: str) -> dict[str, Any] | None:
    """RFC 8414 metadata, best effort: None when it cannot be had."""
    import asyncio

    import httpx

    try:
        async with asyncio.timeout(15.0), http_client(10.0) as http, http.stream("GET", url) as response:
            body = _json_body(await read_capped(response)) if response.status_code == 200 else None
    except (httpx.HTTPError, ResponseTooLarge, TimeoutError):
        return None
    return body if isinstance(body, dict) else None


def apply_metadata(app_cfg: OAuthApp, meta: Mapping[str, Any] | None) -> OAuthApp:
    """What metadata adds: the issuer (for iss), a device endpoint, a revocation endpoint, PKCE support."""
    if not meta:
        return app_cfg
    changes: dict[str, Any] = {}
    issuer = meta.get("issuer")
    if isinstance(issuer, str) and issuer:
        changes["issuer"] = issuer
        changes["iss_required"] = meta.get("authorization_response_iss_parameter_supported") is True
    for key, attr in (("device_authorization_endpoint", "device_url"), ("revocation_endpoint", "revoke_url")):
        value = meta.get(key)
        if isinstance(value, str) and value and getattr(app_cfg, attr) is None:
            if key == "revocation_endpoint" and _has_own_revoke(app_cfg.connector):
                continue  # the vendor revokes through its own API (docs/vendors.md)
            try:
                changes[attr] = check_endpoint(value, key)
            except UsageError:
                continue
    methods = meta.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" in methods:
        changes["pkce"] = True
    return replace(app_cfg, **changes)


def _has_own_revoke(connector_name: str) -> bool:
    from botctl.connectors import registry

    c = registry.get(connector_name)
    return c is not None and c.revoke is not None


async def revoke_request(app_cfg: OAuthApp, token: Secret, hint: str) -> None:
    """RFC 7009 §2.1. 200 means revoked (or already invalid, §2.2)."""
    assert app_cfg.revoke_url
    data = {"token": token.reveal(), "token_type_hint": hint}
    headers = _client_auth(app_cfg, data, app_cfg.revoke_auth)
    status, body, _ = await _post(app_cfg.revoke_url, data, headers, what="revocation endpoint")
    if status == 200:
        return
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        hidden = _secret_values(app_cfg, data)
        raise ServerError(
            clean_text(body["error"], 60, secrets_=hidden),
            clean_text(str(body.get("error_description") or ""), secrets_=hidden),
            status,
        )
    raise EndpointError(
        f"the revocation endpoint answered HTTP {status}", sent=True, unknown=False, status=status
    )


async def revoke_quietly(app_cfg: OAuthApp, tokens: TokenSet) -> None:
    if not app_cfg.revoke_url:
        return
    for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")):
        if token is not None:
            try:
                await revoke_request(app_cfg, token, hint)
            except (ServerError, EndpointError):
                pass
