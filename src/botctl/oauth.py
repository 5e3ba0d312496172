"""OAuth 2.0 for the OAuth connectors (Calendly, Zendesk, HubSpot, Shopify): connect, refresh, revoke.

Connect (RFC 6749, RFC 8252, RFC 7636, RFC 8628, RFC 9207):

* browser: authorization code + PKCE S256 (a 32-byte verifier) for every vendor that takes it, a
  256-bit single-use `state`, and a one-shot listener on 127.0.0.1 (an ephemeral port unless the
  app fixes one) that 404s every other path, answers 400 to (and ignores) a request whose `state` is
  not this login's, hands the one matching callback to the flow, closes, and times out;
  `iss` is compared with the server's metadata when the server sends it. `--no-browser` prints the
  URL instead of opening it; `--paste` reads the final redirect URL back from the terminal.
* device (RFC 8628): user code + verification URL; polling honours `interval` (default 5 s),
  `slow_down` (+5 s for good), `authorization_pending`, `access_denied`, `expired_token` and
  `expires_in`. The clock and the sleep are parameters, so tests check the timing without sleeping.

Refresh: a margin before expiry, and on a vendor 401. Single-flight within a process (one asyncio
task per connection, every other caller awaits it) and across processes (a lease on the connection
row, re-read after it is acquired). Rotation-safe: the new refresh token is committed in the same
transaction as the new access token before either is returned. A refresh whose outcome is unknown
(crash, timeout or 5xx after sending) is recorded as such; the next attempt sends the stored token
once and, on `invalid_grant`, marks the connection `needs_reauth` rather than trying again.
Transient failures back off with jitter; the connection stays `active` while its token is valid.

Revoke: RFC 7009 with the client credentials where the vendor has such an endpoint, else the
vendor's own endpoint (Zendesk, Shopify: `Connector.revoke`).

Every answer of an authorization server is read up to 1 MiB (`MAX_RESPONSE_BYTES`) and within a
total deadline; more is refused unread.

Exit statuses added here (also in README "Exit codes"): 24 the authorization was denied, 25 the
redirect failed a security check (state or iss mismatch, replay), 26 no approval before the timeout.

httpx and rich are imported inside functions only (start-up time is a feature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError, CredentialRejected, NeedsReauth, NotFound, Transient, UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    import asyncio
    from contextlib import AbstractContextManager

    import httpx

    from botctl.app import App
    from botctl.connections import Connection
    from botctl.connectors.base import Connector
    from botctl.workspaces import Workspace

EXIT_DENIED = 24
EXIT_MISMATCH = 25
EXIT_TIMEOUT = 26

DEFAULT_MARGIN_S = 300.0  # refresh when the access token has less than this left
DEFAULT_TIMEOUT_S = 300.0  # how long connect waits for the browser / the device approval
LEASE_TTL_S = 90.0  # > the token request's own timeout, so a live holder never loses its lease
LEASE_POLL_S = 0.05
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0
REQUEST_TIMEOUT_S = 20.0
MAX_RESPONSE_BYTES = 1 << 20  # token, device, revocation, metadata and sandbox answers: 1 MiB at most
TOTAL_DEADLINE_S = 30.0  # one request to an authorization server, connect to last byte (a trickle ends here)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_AUTH_METHODS = ("client_secret_post", "client_secret_basic", "none")
DEFAULT_REDIRECT_PATH = "/callback"

Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]


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


class _ServerError(Exception):
    """A definitive OAuth error answer (RFC 6749 §5.2): the server processed the request and said no."""

    def __init__(self, error: str, description: str, status: int, interval: int | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.interval = interval


class _EndpointError(Exception):
    """No usable answer. `sent`: the request may have reached the server. `unknown`: the server may
    have acted on it (a rotation may have happened) without us learning the result."""

    def __init__(self, message: str, *, sent: bool, unknown: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent
        self.unknown = unknown
        self.status = status
        self.retry_after = retry_after


# -- the vendors' authorization servers (CONNECTORS.md §1.1, §3.1, §5.1, §7.1) ------------------------


@dataclass(frozen=True)
class VendorOAuth:
    authorize_url: str  # {subdomain} / {shop} are filled from the connection's config
    token_url: str
    revoke_url: str | None  # an RFC 7009-style endpoint; None: the vendor's own (Connector.revoke)
    metadata_url: str | None
    token_auth: str  # client authentication at the token endpoint
    revoke_auth: str
    pkce: bool
    scope_separator: str = " "
    # Extra parameters on the code exchange (Shopify: expiring offline tokens).
    token_params: tuple[tuple[str, str], ...] = ()
    scope_in_token_request: bool = False
    device_url: str | None = None
    rotates_refresh_tokens: str = "yes"
    access_ttl: str = ""
    redirect_note: str = ""


VENDORS: dict[str, VendorOAuth] = {
    # §1.1: web clients authenticate with Basic; PKCE recommended; single-use refresh tokens; 2 h tokens;
    # POST /oauth/revoke takes client_id, client_secret and token in the body.
    "calendly": VendorOAuth(
        authorize_url="https://auth.calendly.com/oauth/authorize",
        token_url="https://auth.calendly.com/oauth/token",
        revoke_url="https://auth.calendly.com/oauth/revoke",
        metadata_url="https://calendly.com/.well-known/oauth-authorization-server",
        token_auth="client_secret_basic", revoke_auth="client_secret_post", pkce=True,
        rotates_refresh_tokens="yes (single use)", access_ttl="2 h",
        redirect_note="register http://127.0.0.1:PORT/callback and set --redirect-port PORT",
    ),
    # §3.1: PKCE supported; client_id/client_secret in the body; refresh rotates and deletes the old
    # pair; 30 min tokens. No RFC 7009 endpoint: DELETE /api/v2/oauth/tokens/{id}.json (connector).
    "zendesk": VendorOAuth(
        authorize_url="https://{subdomain}.zendesk.com/oauth/authorizations/new",
        token_url="https://{subdomain}.zendesk.com/oauth/tokens",
        revoke_url=None, metadata_url=None,
        token_auth="client_secret_post", revoke_auth="client_secret_post", pkce=True,
        scope_in_token_request=True, rotates_refresh_tokens="yes", access_ttl="30 min",
        redirect_note="register http://127.0.0.1:PORT/callback exactly and set --redirect-port PORT",
    ),
    # §5.1: v3 token endpoints, parameters in the body, PKCE supported, 30 min tokens, rotation not
    # documented (whatever refresh_token comes back is stored); POST /oauth/v3/token/revoke.
    "hubspot": VendorOAuth(
        authorize_url="https://app.hubspot.com/oauth/authorize",
        token_url="https://api.hubapi.com/oauth/v3/token",
        revoke_url="https://api.hubapi.com/oauth/v3/token/revoke",
        metadata_url=None,
        token_auth="client_secret_post", revoke_auth="client_secret_post", pkce=True,
        rotates_refresh_tokens="not documented", access_ttl="30 min",
        redirect_note="register http://localhost:PORT/callback (HubSpot matches exactly) and set "
                      "--redirect-uri http://localhost:PORT/callback",
    ),
    # §7.1: no PKCE in the Admin OAuth flow; comma-separated scopes; client_secret in the body;
    # expiring offline tokens (expiring=1): 1 h access + rotating refresh token. Revocation is the
    # app uninstalling itself: DELETE /admin/api_permissions/current.json (connector).
    "shopify": VendorOAuth(
        authorize_url="https://{shop}.myshopify.com/admin/oauth/authorize",
        token_url="https://{shop}.myshopify.com/admin/oauth/access_token",
        revoke_url=None, metadata_url=None,
        token_auth="client_secret_post", revoke_auth="client_secret_post", pkce=False,
        scope_separator=",", token_params=(("expiring", "1"),),
        rotates_refresh_tokens="yes", access_ttl="1 h",
        redirect_note="add http://127.0.0.1:PORT/callback to the app's allowed redirection URLs and set "
                      "--redirect-port PORT",
    ),
}


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


def vendor(connector: str) -> VendorOAuth:
    found = VENDORS.get(connector)
    if found is None:
        names = ", ".join(VENDORS)
        raise UsageError(f"{connector} does not connect with OAuth.", hint=f"OAuth connectors: {names}.",
                         code="not_oauth")
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
        raise UsageError(f"{what} {url!r} has an unknown placeholder.",
                         hint=f"Placeholders allowed here: {', '.join('{' + p + '}' for p in placeholders) or 'none'}.")
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
        raise UsageError(f"--redirect-uri must be a loopback URL like http://127.0.0.1:8765/callback, not {uri!r}.",
                         hint="botctl listens on 127.0.0.1 for the redirect (RFC 8252 §7.3).")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError("--redirect-uri must not carry a query, fragment or user info.")
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--redirect-uri has an invalid port: {uri!r}.")
    host = "[::1]" if parts.hostname == "::1" else parts.hostname
    return f"http://{host}{':' + str(port) if port else ''}{parts.path or '/'}"


def _split_scopes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        items = re.split(r"[\s,]+", value)
    else:
        return None
    return tuple(dict.fromkeys(s for s in items if s))


def effective_app(connector: Connector, *, source: str, client_id: str, client_secret: Secret | None,
                  settings: Mapping[str, Any], config: Mapping[str, str]) -> OAuthApp:
    """Defaults from VENDORS, overridden by `settings`, with the connection's tenant filled in."""
    v = vendor(connector.name)

    def fill(url: str | None, what: str) -> str | None:
        if not url:
            return None
        check_endpoint(url, what, placeholders=connector.config_fields)
        try:
            return url.format(**{k: config[k] for k in connector.config_fields if k in config})
        except KeyError as exc:
            raise UsageError(f"{connector.vendor} needs --{str(exc.args[0]).replace('_', '-')} for its OAuth URLs.") \
                from None

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
        scopes=_split_scopes(settings.get("scopes")) or connector.scopes,
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


# -- PKCE, state, the authorization request -------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """RFC 7636 §4.1: 32 octets from the CSPRNG, base64url → 43 unreserved characters (256 bits)."""
    return _b64url(os.urandom(32))


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    return secrets.token_urlsafe(32)  # 256 bits: well above the 128-bit bar


@dataclass
class AuthRequest:
    """One login attempt: its state, PKCE verifier and redirect URI. Its callback is accepted once."""

    app: OAuthApp
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str = field(default_factory=new_state)
    verifier: str | None = None
    used: bool = False

    def __post_init__(self) -> None:
        if self.verifier is None and self.app.pkce:
            self.verifier = new_verifier()

    @property
    def url(self) -> str:
        from urllib.parse import urlencode, urlsplit, urlunsplit

        params = {"response_type": "code", "client_id": self.app.client_id, "redirect_uri": self.redirect_uri,
                  "scope": self.app.scope_separator.join(self.scopes), "state": self.state}
        if self.verifier:
            params |= {"code_challenge": s256(self.verifier), "code_challenge_method": "S256"}
        parts = urlsplit(self.app.authorize_url)
        query = "&".join(q for q in (parts.query, urlencode(params)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def accept(self, params: Mapping[str, str]) -> str:
        """Check a redirect's parameters and return the code. Raises on anything else; single use."""
        if self.used:
            raise CallbackRejected("this authorization response was already used (a replay); nothing was stored.",
                                   hint="Run the connect command again.", code="state_replayed")
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            raise CallbackRejected(
                "the redirect's state does not match this login attempt (possible cross-site request forgery).",
                hint="Nothing was stored. Run the connect command again and finish it in the same browser.")
        self.used = True
        iss = params.get("iss")
        if iss is not None and self.app.issuer is not None and iss != self.app.issuer:
            raise CallbackRejected(f"the redirect names issuer {_clean(iss)!r}, not {self.app.issuer!r} "
                                   "(possible mix-up attack); nothing was stored.",
                                   hint="Check the OAuth app's URLs (botctl oauth-app list).", code="iss_mismatch")
        if iss is None and self.app.iss_required:
            raise CallbackRejected("the authorization server promises an iss parameter and sent none; nothing "
                                   "was stored.", hint="Run the connect command again.", code="iss_mismatch")
        if params.get("error"):
            raise _callback_error(self.app, params["error"], params.get("error_description") or "")
        code = params.get("code")
        if not code:
            raise CallbackRejected("the redirect carried no authorization code.", code="no_code")
        return code


def parse_query(query: str) -> dict[str, str]:
    from urllib.parse import parse_qs

    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=50)
    except ValueError:
        raise CallbackRejected("the redirect's query string is malformed.", code="bad_callback") from None
    if any(len(v) > 1 for v in parsed.values()):
        # RFC 6749 §3.1: parameters MUST NOT repeat; a duplicate state/code is an injection attempt.
        raise CallbackRejected("the redirect repeats a parameter; nothing was stored.", code="bad_callback")
    return {k: v[0] for k, v in parsed.items()}


def parse_pasted(text: str, redirect_uri: str) -> dict[str, str]:
    """The address the browser ended on (or just its query string), pasted back by the user."""
    from urllib.parse import urlsplit

    text = text.strip()
    if not text:
        raise CallbackRejected("nothing was pasted.", hint="Paste the whole address from the browser's address bar.",
                               code="bad_callback")
    if "://" in text:
        got, want = urlsplit(text), urlsplit(redirect_uri)
        if (got.scheme, got.hostname, got.port, got.path) != (want.scheme, want.hostname, want.port, want.path):
            raise CallbackRejected("that address is not botctl's redirect URI "
                                   f"({want.scheme}://{want.netloc}{want.path}).",
                                   hint="Paste the address the browser was sent to after you approved.",
                                   code="bad_callback")
        return parse_query(got.query)
    return parse_query(text.lstrip("?"))


def _clean(text: str, limit: int = 200, *, secrets_: tuple[str, ...] = ()) -> str:
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


def _callback_error(app_cfg: OAuthApp, error: str, description: str) -> BotctlError:
    error, desc = _clean(error, 60), _clean(description)
    said = f" ({desc})" if desc else ""
    if error == "access_denied":
        return AuthorizationDenied(f"the authorization was denied{said}; nothing was stored.",
                                   hint="Run the connect command again and approve botctl.")
    if error in ("server_error", "temporarily_unavailable"):
        return Transient(f"the authorization server failed: {error}{said}.", hint="Try again in a moment.",
                         code="upstream_unavailable")
    if error in ("invalid_scope",):
        return UsageError(f"the authorization server refused the scopes {' '.join(app_cfg.scopes)!r}{said}.",
                          hint=f"Set the scopes your app may request: botctl oauth-app set {app_cfg.connector} "
                               "... --scopes '...'", code=error)
    return CredentialRejected(f"the authorization server refused the request: {error}{said}.",
                              hint="Check the OAuth app (client id, redirect URI): botctl oauth-app list",
                              code=error or "oauth_error")


# -- talking to the authorization server -----------------------------------------------------------------


def _http(timeout: float = REQUEST_TIMEOUT_S) -> httpx.AsyncClient:
    import httpx

    # No redirects (a token endpoint that redirects is refused), no proxies from the environment.
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)), follow_redirects=False,
                             trust_env=False, headers={"Accept": "application/json", "User-Agent": "botctl/0.1"})


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


async def _post(url: str, data: dict[str, str], headers: dict[str, str], *, what: str,
                client: httpx.AsyncClient | None = None) -> tuple[int, Any, httpx.Headers]:
    import asyncio

    import httpx

    from botctl.connectors.http import parse_retry_after

    own = client is None
    http = client or _http()
    try:
        async with asyncio.timeout(TOTAL_DEADLINE_S), http.stream("POST", url, data=data, headers=headers) as response:
            raw = await read_capped(response)
    except ResponseTooLarge:
        # Sent and answered, but not readable within bounds: the server may have acted (rotated a token).
        raise _EndpointError(f"the {what} sent an answer over 1 MiB; botctl did not read it", sent=True,
                             unknown=True) from None
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise _EndpointError(f"could not reach the {what} ({type(exc).__name__})", sent=False, unknown=False) from None
    except (httpx.TimeoutException, TimeoutError):
        raise _EndpointError(f"the {what} did not answer in time", sent=True, unknown=True) from None
    except httpx.HTTPError as exc:
        raise _EndpointError(f"the {what} dropped the connection ({type(exc).__name__})", sent=True,
                             unknown=True) from None
    finally:
        if own:
            await http.aclose()
    body = _json_body(raw)
    if response.status_code == 429:
        raise _EndpointError(f"the {what} is rate limiting botctl", sent=True, unknown=False, status=429,
                             retry_after=parse_retry_after(response.headers.get("retry-after")))
    return response.status_code, body, response.headers


async def _token_request(app_cfg: OAuthApp, data: dict[str, str], *, url: str | None = None,
                         what: str = "token endpoint") -> dict[str, Any]:
    """POST to the token (or device) endpoint; the JSON body on 200, else _ServerError / _EndpointError."""
    data = dict(data)
    headers = _client_auth(app_cfg, data, app_cfg.token_auth)
    status, body, _ = await _post(url or app_cfg.token_url, data, headers, what=what)
    if status == 200 and isinstance(body, dict):
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), str) and 400 <= status < 500:
        interval = body.get("interval")
        hidden = _secret_values(app_cfg, data)
        raise _ServerError(_clean(body["error"], 60, secrets_=hidden),
                           _clean(str(body.get("error_description") or ""), secrets_=hidden), status,
                           interval if isinstance(interval, int) and not isinstance(interval, bool) else None)
    if status == 401:
        raise _ServerError("invalid_client", "", status)
    if status == 200:
        raise _EndpointError(f"the {what} sent a malformed answer", sent=True, unknown=True, status=status)
    if 300 <= status < 400:
        raise _EndpointError(f"the {what} answered with a redirect (HTTP {status}); botctl does not follow those",
                             sent=True, unknown=True, status=status)
    # A 5xx may come after the server acted (e.g. rotated the refresh token): the outcome is unknown.
    raise _EndpointError(f"the {what} failed (HTTP {status})", sent=True, unknown=status >= 500, status=status)


@dataclass(frozen=True)
class TokenSet:
    access_token: Secret
    refresh_token: Secret | None
    expires_in: float | None
    scopes: tuple[str, ...] | None


def _token_set(body: Mapping[str, Any], what: str = "token endpoint") -> TokenSet:
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise _EndpointError(f"the {what} answered without an access token", sent=True, unknown=True)
    token_type = body.get("token_type")
    if token_type is not None and str(token_type).lower() != "bearer":
        raise _EndpointError(f"the {what} issued a {_clean(str(token_type), 20)!r} token; botctl uses bearer tokens",
                             sent=True, unknown=True)
    refresh = body.get("refresh_token")
    expires = body.get("expires_in")
    try:
        expires_in = float(expires) if expires is not None and not isinstance(expires, bool) else None
    except (TypeError, ValueError):
        expires_in = None
    if expires_in is not None and expires_in < 0:
        expires_in = 0.0
    return TokenSet(Secret(access), Secret(refresh) if isinstance(refresh, str) and refresh else None, expires_in,
                    _split_scopes(body.get("scope")))


def _exchange_error(exc: _ServerError | _EndpointError, vendor_name: str, step: str) -> BotctlError:
    if isinstance(exc, _EndpointError):
        return Transient(f"{step}: {exc.message}.", hint="Check the network and try again.",
                         code="upstream_unavailable")
    said = f" ({exc.description})" if exc.description else ""
    if exc.error in ("invalid_client", "unauthorized_client"):
        return CredentialRejected(f"{vendor_name} refused botctl's OAuth client: {exc.error}{said}.",
                                  hint="Check the client id and secret: botctl oauth-app list / oauth-app set.",
                                  code=exc.error)
    return CredentialRejected(f"{step}: {vendor_name} answered {exc.error}{said}.",
                              hint="Run the connect command again.", code=exc.error)


async def exchange_code(req: AuthRequest, code: str, vendor_name: str) -> TokenSet:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri}
    if req.verifier:
        data["code_verifier"] = req.verifier
    if req.app.scope_in_token_request:
        data["scope"] = req.app.scope_separator.join(req.scopes)
    data.update(dict(req.app.token_params))
    try:
        return _token_set(await _token_request(req.app, data))
    except (_ServerError, _EndpointError) as exc:
        raise _exchange_error(exc, vendor_name, "exchanging the authorization code failed") from None


async def fetch_metadata(url: str) -> dict[str, Any] | None:
    """RFC 8414 metadata, best effort: None when it cannot be had."""
    import asyncio

    import httpx

    try:
        async with asyncio.timeout(15.0), _http(10.0) as http, http.stream("GET", url) as response:
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
                continue  # the vendor revokes through its own API (CONNECTORS.md)
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


async def sandbox_app(connector: Connector, sandbox_url: str) -> OAuthApp:
    """The sandbox's own OAuth client for `connector`, from GET /_sandbox/credentials."""
    import asyncio
    import json

    import httpx

    try:
        async with asyncio.timeout(15.0), _http(10.0) as http, \
                http.stream("GET", sandbox_url.rstrip("/") + "/_sandbox/credentials") as r:
            creds = json.loads(await read_capped(r))
    except (httpx.HTTPError, ValueError, RecursionError, ResponseTooLarge, TimeoutError):
        raise Transient(f"could not read the sandbox's credentials at {sandbox_url}.",
                        hint="Is `botctl sandbox serve` running there?", code="upstream_unavailable") from None
    entry = (creds.get(connector.name) or {}).get("oauth") if isinstance(creds, dict) else None
    if not isinstance(entry, dict) or not entry.get("client_id"):
        raise UsageError(f"the sandbox at {sandbox_url} has no OAuth app for {connector.vendor}.",
                         hint="Use a sandbox with the OAuth server, or pass a token with --access-token-stdin.",
                         code="no_oauth_app")
    redirect = None
    for uri in entry.get("redirect_uris") or []:
        try:
            redirect = check_redirect_uri(str(uri))
            break
        except UsageError:
            continue
    v = vendor(connector.name)
    secret = entry.get("client_secret")
    method = entry.get("token_endpoint_auth_method") or (v.token_auth if secret else "none")
    if method not in TOKEN_AUTH_METHODS:
        method = "client_secret_post"
    extensions = entry.get("sandbox_extensions") or []
    if "revoke_url" in extensions and connector.revoke is not None:
        # The real vendor has no RFC 7009 endpoint: revoke the way the real one is revoked.
        entry = {**entry, "revoke_url": None}
    separator = entry.get("scope_separator")
    return OAuthApp(
        connector=connector.name, source="sandbox", client_id=str(entry["client_id"]),
        client_secret=Secret(secret) if isinstance(secret, str) and secret else None,
        authorize_url=check_endpoint(str(entry["authorize_url"]), "the sandbox authorize URL"),
        token_url=check_endpoint(str(entry["token_url"]), "the sandbox token URL"),
        revoke_url=check_endpoint(str(entry["revoke_url"]), "the sandbox revoke URL") if entry.get("revoke_url")
        else None,
        device_url=check_endpoint(str(entry["device_url"]), "the sandbox device URL") if entry.get("device_url")
        else None,
        metadata_url=str(entry["metadata_url"]) if entry.get("metadata_url") else None,
        redirect_uri=redirect, token_auth=method, revoke_auth=method,
        # The connector's own scopes (what its actions need), not everything the sandbox could grant.
        scopes=connector.scopes,
        pkce=True, scope_separator=separator if separator in (" ", ",") else v.scope_separator,
        token_params=v.token_params, scope_in_token_request=v.scope_in_token_request,
        issuer=str(entry["issuer"]) if entry.get("issuer") else None,
    )


# -- the loopback listener (RFC 8252 §7.3) ---------------------------------------------------------------

_PAGE = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
         "<body style=\"font-family: sans-serif; margin: 3em\"><h1>{title}</h1><p>{message}</p></body></html>")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _html(text: str) -> str:
    import html

    return html.escape(text)


class Callback:
    """The one request that came to the redirect path: its query, and the browser waiting for a page."""

    def __init__(self, query: str, writer: asyncio.StreamWriter) -> None:
        self.query = query
        self.writer = writer
        self.answered = False

    async def respond(self, status: int, title: str, message: str) -> None:
        if self.answered:
            return
        self.answered = True
        await _write_page(self.writer, status, title, message)


async def _write_page(writer: asyncio.StreamWriter, status: int, title: str, message: str) -> None:
    body = _PAGE.format(title=_html(title), message=_html(message)).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
            "Connection: close\r\n\r\n")
    try:
        writer.write(head.encode() + body)
        await writer.drain()
    except (ConnectionError, RuntimeError):
        pass
    finally:
        writer.close()


class LoopbackListener:
    """Listens on 127.0.0.1 (never 0.0.0.0): 404 for every path but the redirect path. Once the flow
    names the login's `state` (`expect_state`), a request on the path whose `state` differs is answered
    400 and ignored — any web page can make the browser request a fixed redirect port, and must not be
    able to end the login — and the first request carrying the right one is handed to the flow; then the
    listener stops accepting connections."""

    MAX_CONNECTIONS = 32  # at once; more are closed unanswered (a page cannot pile up idle connections)

    def __init__(self, path: str = DEFAULT_REDIRECT_PATH, port: int = 0) -> None:
        self.path = path or "/"
        self.port = port
        self.host = "127.0.0.1"
        self.ignored = 0  # requests on the path that carried another state (or none)
        self._state: str | None = None
        self._server: asyncio.Server | None = None
        self._future: asyncio.Future[Callback] | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def expect_state(self, state: str) -> None:
        """Only a request carrying this `state` ends the wait (call before showing the URL)."""
        self._state = state

    async def start(self) -> LoopbackListener:
        import asyncio

        self._future = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=16 * 1024)
        except OSError as exc:
            raise UsageError(f"cannot listen on {self.host}:{self.port} for the OAuth redirect "
                             f"({exc.strerror or exc}).",
                             hint="Another program holds that port: stop it, or register and use another "
                                  "--redirect-port.", code="port_in_use") from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def redirect_uri(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{self.path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.MAX_CONNECTIONS:
            writer.close()
            return
        self._writers.add(writer)
        handed_over = False
        try:
            handed_over = await self._serve(reader, writer)
        finally:
            if not handed_over:
                self._writers.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True when it is the callback (its writer then belongs to the flow)."""
        import asyncio

        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return False
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            await _write_page(writer, 400, "Bad request", "botctl did not understand that request.")
            return False
        method, target, _ = parts
        path, _, query = target.partition("?")
        assert self._future is not None
        if path != self.path or self._future.done():
            await _write_page(writer, 404, "Not found", "Nothing here.")
            return False
        if method != "GET":
            await _write_page(writer, 405, "Method not allowed", "Only the browser's redirect belongs here.")
            return False
        if self._state is not None and not self._state_matches(query):
            self.ignored += 1
            await _write_page(writer, 400, "Not this sign-in",
                              "This address does not belong to the sign-in botctl is waiting for; it was ignored.")
            return False
        self._future.set_result(Callback(query, writer))
        if self._server is not None:
            self._server.close()  # exactly one callback: stop accepting connections now
        return True

    def _state_matches(self, query: str) -> bool:
        assert self._state is not None
        try:
            got = parse_query(query).get("state") or ""
        except CallbackRejected:
            return False
        return hmac.compare_digest(got.encode(), self._state.encode())

    async def wait(self, timeout: float) -> Callback:
        import asyncio

        assert self._future is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            n = self.ignored
            ignored = (f" ({n} request{'s' if n != 1 else ''} to the redirect address carried another sign-in's "
                       f"state and {'were' if n != 1 else 'was'} ignored)") if n else ""
            raise AuthorizationTimeout(f"no answer from the browser within {timeout:g} s{ignored}; nothing was "
                                       "stored.",
                                       hint="Run the connect command again (--timeout SECONDS for longer), or use "
                                            "--paste / --device when the browser is on another machine.") from None

    async def close(self, keep: Callback | None = None) -> None:
        import asyncio

        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            if keep is None or w is not keep.writer:
                w.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                pass


# -- what the person connecting sees -------------------------------------------------------------------


class FlowUI:
    """How a flow talks to the person connecting. The CLI subclasses it; this default is silent."""

    def show_url(self, url: str, *, opened: bool, mode: str) -> None:
        pass

    def show_device_code(self, user_code: str, verification_uri: str, complete_uri: str | None) -> None:
        pass

    def waiting(self, message: str) -> AbstractContextManager[Any]:
        import contextlib

        return contextlib.nullcontext()

    def read_pasted(self, redirect_uri: str) -> str:
        raise UsageError("--paste needs a terminal to paste into.", hint="Use --no-browser or --device.")

    def info(self, message: str) -> None:
        pass


def browser_available() -> bool:
    """False on a headless Unix box (no DISPLAY / WAYLAND_DISPLAY and no $BROWSER), e.g. over SSH."""
    import sys

    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32", "cygwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_browser(url: str) -> bool:
    """Open `url` with `webbrowser`, only for http(s) URLs (a file: or javascript: URL is never opened)."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme not in ("http", "https"):
        return False
    import webbrowser

    try:
        return bool(webbrowser.open(url, new=1, autoraise=True))
    except webbrowser.Error:
        return False


async def _open_in_background(url: str) -> bool:
    """`open_browser` on a daemon thread: webbrowser waits for a $BROWSER command (and for console
    browsers) to exit, and such a browser needs our listener running to finish the redirect."""
    import asyncio
    import concurrent.futures
    import threading

    done: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def run() -> None:
        try:
            result = open_browser(url)
        except Exception:  # noqa: BLE001 - no browser is not an error: the URL is printed too
            result = False
        if not done.done():
            done.set_result(result)

    threading.Thread(target=run, name="botctl-browser", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), 2.0)
    except TimeoutError:
        return True  # still running: a browser that stays in the foreground


@dataclass
class Authorization:
    """A flow's result: the tokens, and (browser flows) the page the browser is still waiting for."""

    tokens: TokenSet
    flow: str
    callback: Callback | None = None

    async def finish(self, ok: bool, message: str = "") -> None:
        if self.callback is None:
            return
        if ok:
            await self.callback.respond(200, "botctl is connected", "botctl is connected; you can close this tab.")
        else:
            await self.callback.respond(400, "botctl could not connect", (message or "See the terminal.")
                                        + " You can close this tab.")


async def browser_flow(app_cfg: OAuthApp, *, ui: FlowUI, vendor_name: str, open_it: bool,
                       timeout: float = DEFAULT_TIMEOUT_S) -> Authorization:
    from urllib.parse import urlsplit

    fixed = urlsplit(app_cfg.redirect_uri) if app_cfg.redirect_uri else None
    listener = await LoopbackListener(fixed.path if fixed else DEFAULT_REDIRECT_PATH,
                                      (fixed.port or 0) if fixed else 0).start()
    callback: Callback | None = None
    try:
        host = fixed.hostname if fixed and fixed.hostname != "::1" else "127.0.0.1"
        req = AuthRequest(app_cfg, listener.redirect_uri(host or "127.0.0.1"), app_cfg.scopes)
        listener.expect_state(req.state)  # before the URL exists anywhere: other requests cannot end the wait
        opened = await _open_in_background(req.url) if open_it else False
        ui.show_url(req.url, opened=opened, mode="browser" if opened else "no_browser")
        with ui.waiting(f"Waiting for you to approve botctl at {vendor_name} (Ctrl-C to cancel)"):
            callback = await listener.wait(timeout)
        try:
            code = req.accept(parse_query(callback.query))
            tokens = await exchange_code(req, code, vendor_name)
        except BotctlError as exc:
            await callback.respond(400, "botctl could not connect", exc.message + " You can close this tab.")
            raise
        return Authorization(tokens, "browser" if opened else "no_browser", callback)
    finally:
        # On success the browser's request stays open: Authorization.finish() answers it.
        await listener.close(keep=callback if callback is not None and not callback.answered else None)


async def paste_flow(app_cfg: OAuthApp, *, ui: FlowUI, vendor_name: str) -> Authorization:
    """For a browser on another machine: print the URL, read the final redirect address back."""
    import socket
    from urllib.parse import urlsplit

    fixed = urlsplit(app_cfg.redirect_uri) if app_cfg.redirect_uri else None
    if fixed is not None and fixed.port:
        redirect = app_cfg.redirect_uri or ""
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a free port number for the URI
            s.bind(("127.0.0.1", 0))
            redirect = f"http://127.0.0.1:{s.getsockname()[1]}{fixed.path if fixed else DEFAULT_REDIRECT_PATH}"
    req = AuthRequest(app_cfg, redirect, app_cfg.scopes)
    ui.show_url(req.url, opened=False, mode="paste")
    pasted = ui.read_pasted(redirect)
    code = req.accept(parse_pasted(pasted, redirect))
    return Authorization(await exchange_code(req, code, vendor_name), "paste")


async def device_flow(app_cfg: OAuthApp, *, ui: FlowUI, vendor_name: str, clock: Clock = time.monotonic,
                      sleep: Sleep | None = None) -> Authorization:
    """RFC 8628. `clock`/`sleep` are injectable: tests drive the timing with a fake clock."""
    import asyncio

    sleep = sleep or asyncio.sleep
    if not app_cfg.device_url:
        raise UsageError(f"{vendor_name}'s authorization server offers no device flow.",
                         hint="Use the browser flow (default), --no-browser or --paste.", code="no_device_flow")
    try:
        body = await _token_request(app_cfg, {"scope": app_cfg.scope_separator.join(app_cfg.scopes)},
                                    url=app_cfg.device_url, what="device authorization endpoint")
    except (_ServerError, _EndpointError) as exc:
        raise _exchange_error(exc, vendor_name, "starting the device flow failed") from None
    device_code, user_code = body.get("device_code"), body.get("user_code")
    # Google-style servers say verification_url.
    uri = body.get("verification_uri") or body.get("verification_url")
    if not all(isinstance(x, str) and x for x in (device_code, user_code, uri)):
        raise Transient("the device authorization endpoint sent an incomplete answer.", code="upstream_unavailable")
    complete = body.get("verification_uri_complete")
    ui.show_device_code(_clean(user_code, 40), _clean(uri, 300),
                        _clean(complete, 400) if isinstance(complete, str) else None)
    interval = _positive(body.get("interval"), 5.0)
    deadline = clock() + _positive(body.get("expires_in"), 900.0)
    network_failures = 0
    with ui.waiting(f"Waiting for you to approve botctl at {vendor_name} (Ctrl-C to cancel)"):
        while True:
            wait = interval if not network_failures else min(60.0, interval * 2 ** network_failures)
            if clock() + wait >= deadline:
                raise AuthorizationTimeout("the device code expired before it was approved; nothing was stored.",
                                           hint="Run the connect command again.", code="expired_token")
            await sleep(wait)
            try:
                body = await _token_request(app_cfg, {"grant_type": DEVICE_GRANT, "device_code": device_code})
            except _ServerError as exc:
                network_failures = 0
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    # RFC 8628 §3.5: +5 s "for this and all subsequent requests".
                    interval = max(interval + 5.0, float(exc.interval or 0))
                    continue
                if exc.error == "access_denied":
                    raise AuthorizationDenied("the authorization was denied; nothing was stored.",
                                              hint="Run the connect command again and approve botctl.") from None
                if exc.error == "expired_token":
                    raise AuthorizationTimeout("the device code expired before it was approved; nothing was "
                                               "stored.", hint="Run the connect command again.",
                                               code="expired_token") from None
                raise _exchange_error(exc, vendor_name, "the device flow failed") from None
            except _EndpointError as exc:
                if exc.status == 429:
                    interval += 5.0
                network_failures += 1  # back off, keep polling until the code expires
                continue
            try:
                return Authorization(_token_set(body), "device")
            except _EndpointError as exc:
                raise Transient(f"the device flow failed: {exc.message}.", code="upstream_unavailable") from None


def _positive(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# -- connect --------------------------------------------------------------------------------------------


@dataclass
class ConnectResult:
    connection: Connection
    replaced: bool
    flow: str
    warnings: list[str]


async def app_for(app: App, ws: Workspace, connector: Connector, config: Mapping[str, str], *,
                  sandbox: str | None = None, redirect_port: int | None = None) -> OAuthApp:
    """The OAuth client to connect with: the sandbox's (with --sandbox), else the workspace's, else the global one."""
    from botctl import oauth_apps

    vendor(connector.name)
    if sandbox:
        app_cfg = await sandbox_app(connector, sandbox)
    else:
        found = oauth_apps.resolve(app, ws, connector, config)
        if found is None:
            raise UsageError(
                f"no OAuth app is configured for {connector.vendor}.",
                hint=f"Register yours first: botctl oauth-app set {connector.name} --client-id ID "
                     "--client-secret-stdin (see README, 'Bring your own OAuth app'); or pass a vendor-issued "
                     "token with --access-token-stdin.", code="no_oauth_app")
        app_cfg = found
    if redirect_port is not None:
        app_cfg = with_redirect_port(app_cfg, redirect_port)
    return app_cfg


async def connect(app: App, ws: Workspace, connector: Connector, config: Mapping[str, str], app_cfg: OAuthApp, *,
                  mode: str = "auto", ui: FlowUI | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                  skip_check: bool = False, clock: Clock = time.monotonic, sleep: Sleep | None = None
                  ) -> ConnectResult:
    """Authorize, check the token with the vendor ("who am I"), store it encrypted; audited either way.

    `mode`: auto | browser | no_browser | paste | device. Nothing is stored unless every step worked.
    """
    import asyncio

    from botctl import connections
    from botctl.connectors.base import ActionError
    from botctl.connectors.scopes import missing_scopes

    ui = ui or FlowUI()
    flow = mode
    auth: Authorization | None = None
    warnings: list[str] = []
    try:
        if app_cfg.metadata_url:
            app_cfg = apply_metadata(app_cfg, await fetch_metadata(app_cfg.metadata_url))
        if mode == "auto":
            if browser_available():
                flow = "browser"
            elif app_cfg.device_url:
                flow = "device"
                ui.info("No browser here and the authorization server offers the device flow: using it.")
            else:
                flow = "no_browser"
        if flow == "device":
            auth = await device_flow(app_cfg, ui=ui, vendor_name=connector.vendor, clock=clock, sleep=sleep)
        elif flow == "paste":
            auth = await paste_flow(app_cfg, ui=ui, vendor_name=connector.vendor)
        elif flow in ("browser", "no_browser"):
            auth = await browser_flow(app_cfg, ui=ui, vendor_name=connector.vendor, open_it=flow == "browser",
                                      timeout=timeout)
            flow = auth.flow
        else:
            raise UsageError(f"unknown flow {mode!r}.")
        tokens = auth.tokens
        granted = tokens.scopes if tokens.scopes is not None else app_cfg.scopes
        fewer = missing_scopes(connector.name, granted, app_cfg.scopes)
        if fewer:
            warnings.append(f"{connector.vendor} granted fewer scopes than requested (missing: {', '.join(fewer)}); "
                            "actions that need them will be refused.")
        label = None
        if skip_check:
            warnings.append(f"skipped the {connector.vendor} account check (--skip-check): the token was not tried.")
        else:
            try:
                label = await connections.validate(connector, config, {"access_token": tokens.access_token})
            except ActionError as exc:
                await _revoke_quietly(app_cfg, tokens)  # nothing will be stored: do not leave a live grant
                raise connections.error_for(exc, connector.vendor) from None
        stored = dict(config)
        stored.update({f"oauth_{k}": v for k, v in {
            "app": app_cfg.source, "client_id": app_cfg.client_id, "token_url": app_cfg.token_url,
            "revoke_url": app_cfg.revoke_url, "token_auth": app_cfg.token_auth, "revoke_auth": app_cfg.revoke_auth,
            "issuer": app_cfg.issuer}.items() if v})
        credential: dict[str, Secret] = {"access_token": tokens.access_token}
        if tokens.refresh_token is not None:
            credential["refresh_token"] = tokens.refresh_token
        if app_cfg.client_secret is not None:
            credential[connections.CLIENT_SECRET_FIELD] = app_cfg.client_secret
        expires_at = (connections.epoch_to_iso(time.time() + tokens.expires_in)
                      if tokens.expires_in is not None else None)
        conn, replaced = connections.save(
            app, ws, connector, auth="oauth", config=stored, credential=credential, account_label=label,
            scopes=tuple(granted), expires_at=expires_at,
            extra_detail={"flow": flow, "scopes": list(granted), "expires_in": tokens.expires_in,
                          "check": "skipped" if skip_check else "ok"})
    except BotctlError as exc:
        await app.aaudit("connection.failed", workspace=ws.name, connector=connector.name,
                         outcome="denied" if exc.exit_code in (20, EXIT_DENIED, EXIT_MISMATCH) else "error",
                         reason=exc.code, detail={"auth": "oauth", "flow": flow, "message": exc.message})
        if auth is not None:
            await auth.finish(False, exc.message)
        raise
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C while waiting: nothing stored, say so
        await app.aaudit("connection.failed", workspace=ws.name, connector=connector.name, outcome="error",
                         reason="interrupted", detail={"auth": "oauth", "flow": flow})
        raise
    await auth.finish(True)
    return ConnectResult(conn, replaced, flow, warnings)


async def _revoke_quietly(app_cfg: OAuthApp, tokens: TokenSet) -> None:
    if not app_cfg.revoke_url:
        return
    for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")):
        if token is not None:
            try:
                await _revoke_request(app_cfg, token, hint)
            except (_ServerError, _EndpointError):
                pass


# -- refresh --------------------------------------------------------------------------------------------

_inflight: dict[tuple[str, str], asyncio.Task[Connection]] = {}


def _host() -> str:
    import socket

    return socket.gethostname().replace(":", "_")


def _new_owner() -> str:
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def _owner_dead(owner: str | None) -> bool:
    """A lease held by a process of this machine that no longer exists (crashed or killed mid-refresh)."""
    if not owner:
        return False
    try:
        host, pid, _ = owner.rsplit(":", 2)
        pid_n = int(pid)
    except ValueError:
        return False
    if host != _host() or pid_n == os.getpid():
        return False
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


def _due(c: Connection, margin_s: float, now: float) -> bool:
    exp = c.expires_at_epoch()
    return exp is not None and exp - now <= margin_s


def _still_valid(c: Connection, now: float) -> bool:
    exp = c.expires_at_epoch()
    return exp is None or exp > now


def _backoff(failures: int, retry_after: float | None = None) -> float:
    import random

    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, failures - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def _vendor_name(name: str) -> str:
    from botctl.connectors import registry

    c = registry.get(name)
    return c.vendor if c else name


def _needs_reauth_error(c: Connection) -> NeedsReauth:
    return NeedsReauth(f"{c.connector} in {c.workspace} needs re-authorisation ({c.status_reason or 'no reason'}).",
                       hint=f"Reconnect: {c.reconnect_command()}")


def _stored_app(app: App, ws: Workspace, c: Connection) -> OAuthApp:
    """The client to refresh/revoke with: the one the connection was made with. Its secret comes from
    the configured app when that is still the same client (so a rotated secret applies), else from
    the copy stored with the connection."""
    from botctl import connections, oauth_apps

    cfg = c.oauth_config()
    if not cfg.get("client_id") or not cfg.get("token_url"):
        raise NeedsReauth(f"{c.connector} in {c.workspace} was connected with a static token and cannot be "
                          "refreshed.", hint=f"Connect it with OAuth: {c.reconnect_command()}",
                          code="no_refresh_token")
    secret = None
    if cfg.get("app") in ("workspace", "global"):
        secret = oauth_apps.stored_secret_for(app, ws, c.connector, cfg["client_id"])
    if secret is None:
        secret = app.vault.get_secret(ws.ref, c.id, connections.CLIENT_SECRET_FIELD)
    method = cfg.get("token_auth") or ("client_secret_post" if secret else "none")
    return OAuthApp(connector=c.connector, source=cfg.get("app", "global"), client_id=cfg["client_id"],
                    client_secret=secret, authorize_url="", token_url=cfg["token_url"],
                    revoke_url=cfg.get("revoke_url"), device_url=None, metadata_url=None, redirect_uri=None,
                    token_auth=method, revoke_auth=cfg.get("revoke_auth") or method, scopes=c.scopes, pkce=False)


async def refresh(app: App, ws: Workspace, connection: Connection, *, force: bool = False,
                  margin_s: float = DEFAULT_MARGIN_S) -> Connection:
    """Refresh `connection`'s access token (if due, or always with `force`); returns the stored row.

    Single-flight: concurrent callers in this process share one attempt; other processes wait for
    the lease and then find the new token. Raises NeedsReauth (invalid_grant: the connection is now
    `needs_reauth`), CredentialRejected (the client was refused), Transient (try later; the
    connection stays active).
    """
    import asyncio
    import functools

    key = (str(app.home.path), connection.id)
    loop = asyncio.get_running_loop()
    while True:
        task = _inflight.get(key)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(_refresh_once(app, ws, connection.id, connection.token_generation, force, margin_s))
            _inflight[key] = task
            task.add_done_callback(functools.partial(_forget, key))
            return await asyncio.shield(task)
        result = await asyncio.shield(task)
        if not force or result.token_generation != connection.token_generation:
            return result
        # A forced refresh joined an unforced attempt that found nothing due: go again, forced.


def _forget(key: tuple[str, str], task: asyncio.Task[Connection]) -> None:
    if _inflight.get(key) is task:
        del _inflight[key]
    if not task.cancelled():
        task.exception()  # retrieved: joined callers re-raise it; nobody needs asyncio's warning


async def _refresh_once(app: App, ws: Workspace, connection_id: str, seen_generation: int, force: bool,
                        margin_s: float) -> Connection:
    import asyncio

    from botctl import connections

    owner = _new_owner()
    started = time.monotonic()

    def read() -> Connection:
        c = connections.by_id(app.vault.conn, ws, connection_id)
        if c is None:
            raise NotFound(f"the connection {connection_id} no longer exists.", code="not_connected")
        return c

    def settled(c: Connection) -> Connection | None:
        """The row if there is nothing (more) to do; None if this caller must refresh."""
        now = time.time()
        if c.status == "needs_reauth":
            raise _needs_reauth_error(c)
        if force:
            return c if c.token_generation != seen_generation else None
        if not _due(c, margin_s, now):
            return c
        if c.refresh_retry_at is not None and c.refresh_retry_at > now:
            if _still_valid(c, now):
                return c  # backing off; the current token still works
            wait = c.refresh_retry_at - now
            raise Transient(f"refreshing the {_vendor_name(c.connector)} token failed recently; next attempt in "
                            f"{wait:.0f} s.", hint=f"Force one now: botctl connections refresh {c.connector} "
                                                   f"-w {c.workspace}", code="upstream_unavailable")
        return None

    while True:
        c = read()
        done = settled(c)
        if done is not None:
            return done
        holder, _ = connections.lease_holder(app, c)
        stale = holder if _owner_dead(holder) else None
        if connections.acquire_refresh_lease(app, c, owner, ttl_s=LEASE_TTL_S, now=time.time(), stale_owner=stale):
            try:
                c = read()  # re-read under the lease: another process may have just refreshed
                done = settled(c)
                if done is not None:
                    return done
                return await _do_refresh(app, ws, c, owner)
            finally:
                connections.release_refresh_lease(app, c, owner)
        if time.monotonic() - started > LEASE_TTL_S + 5:
            raise Transient(f"another botctl process has been refreshing {c.connector} in {c.workspace} for too "
                            "long.", hint="Try again in a minute.", code="upstream_unavailable")
        await asyncio.sleep(LEASE_POLL_S)


async def _do_refresh(app: App, ws: Workspace, c: Connection, owner: str) -> Connection:
    from botctl import connections

    vendor_name = _vendor_name(c.connector)
    refresh_token = app.vault.get_secret(ws.ref, c.id, "refresh_token")
    if refresh_token is None:
        raise NeedsReauth(f"{c.connector} in {c.workspace} has no refresh token.",
                          hint=f"Reconnect to get a new access token: {c.reconnect_command()}", code="no_refresh_token")
    app_cfg = _stored_app(app, ws, c)
    previous_unknown = c.refresh_state in ("sent", "unknown")
    detail: dict[str, Any] = {"previous_outcome": "unknown"} if previous_unknown else {}
    if not connections.mark_refresh_sent(app, c, owner):
        raise Transient("lost the refresh lease to another process.", hint="Try again.", code="upstream_unavailable")
    try:
        body = await _token_request(app_cfg, {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()})
        tokens = _token_set(body)
    except _ServerError as exc:
        said = f": {exc.description}" if exc.description else ""
        if exc.error == "invalid_grant":
            reason = f"{vendor_name} refused the refresh token (invalid_grant{said})"
            if previous_unknown:
                # The earlier attempt probably rotated the token and its answer was lost: the grant
                # cannot be recovered, and retrying would only loop.
                reason += "; an earlier refresh's outcome was unknown"
            connections.mark_needs_reauth(app, ws, c, reason)
            await app.aaudit("connection.refresh_failed", workspace=ws.name, connector=c.connector, outcome="error",
                             reason="needs_reauth",
                             detail={**detail, "error": exc.error, "error_description": exc.description,
                                     "upstream_status": exc.status, "connection_status": "needs_reauth"})
            raise NeedsReauth(reason + ".", hint=f"Reconnect: {c.reconnect_command()}") from None
        connections.record_refresh_failure(app, c, owner, sent=True, outcome_unknown=False,
                                           retry_at=time.time() + _backoff(c.refresh_failures + 1))
        await app.aaudit("connection.refresh_failed", workspace=ws.name, connector=c.connector, outcome="error",
                         reason=exc.error,
                         detail={**detail, "error": exc.error, "error_description": exc.description,
                                 "upstream_status": exc.status})
        raise _exchange_error(exc, vendor_name, f"refreshing the {vendor_name} token failed") from None
    except _EndpointError as exc:
        unknown = exc.unknown or (previous_unknown and not exc.sent)
        connections.record_refresh_failure(app, c, owner, sent=exc.sent, outcome_unknown=unknown,
                                           retry_at=time.time() + _backoff(c.refresh_failures + 1, exc.retry_after))
        await app.aaudit("connection.refresh_failed", workspace=ws.name, connector=c.connector, outcome="error",
                         reason="refresh_outcome_unknown" if exc.unknown else "upstream_unavailable",
                         detail={**detail, "message": exc.message, "upstream_status": exc.status,
                                 "outcome_unknown": unknown})
        more = (" Its outcome is unknown: the next attempt sends the stored refresh token once more."
                if exc.unknown else "")
        raise Transient(f"refreshing the {vendor_name} token failed: {exc.message}.{more}",
                        hint="It is retried with backoff; the connection stays usable while its token is valid.",
                        code="refresh_outcome_unknown" if exc.unknown else "upstream_unavailable") from None
    rotated = tokens.refresh_token is not None and tokens.refresh_token != refresh_token
    expires_at = connections.epoch_to_iso(time.time() + tokens.expires_in) if tokens.expires_in is not None else None
    try:
        saved = connections.save_tokens(
            app, ws, c, access_token=tokens.access_token, refresh_token=tokens.refresh_token if rotated else None,
            expires_at=expires_at, scopes=tokens.scopes if tokens.scopes is not None else c.scopes)
    except connections.Superseded:
        # Reconnected while this refresh was out: the new grant wins; this one is revoked if possible.
        await _revoke_quietly(app_cfg, tokens)
        found = connections.by_id(app.vault.conn, ws, c.id)
        if found is None:
            raise NotFound(f"{c.connector} in {c.workspace} was disconnected meanwhile.", code="not_connected") from None
        return found
    await app.aaudit("connection.refreshed", workspace=ws.name, connector=c.connector,
                     detail={**detail, "expires_in": tokens.expires_in, "rotated": rotated,
                             "generation": saved.token_generation})
    return saved


async def ensure_fresh(app: App, ws: Workspace, connection: Connection, *,
                       margin_s: float = DEFAULT_MARGIN_S) -> Connection:
    """`connection`, refreshed first if its token expires within `margin_s` and it can be refreshed.

    A transient failure is swallowed while the current token is still valid (the connection stays
    usable); past expiry it raises Transient."""
    from botctl import connections

    if connection.auth != "oauth" or not _due(connection, margin_s, time.time()):
        return connection
    if not connections.has_refresh_token(app, ws, connection):
        return connection
    try:
        return await refresh(app, ws, connection, margin_s=margin_s)
    except Transient:
        current = connections.by_id(app.vault.conn, ws, connection.id) or connection
        if _still_valid(current, time.time()):
            return current
        raise


@dataclass(frozen=True)
class RefreshOutcome:
    workspace: str
    connector: str
    outcome: str  # refreshed | not_due | needs_reauth | failed
    code: str | None = None
    message: str | None = None
    expires_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "connector": self.connector, "outcome": self.outcome,
                "code": self.code, "message": self.message, "expires_at": self.expires_at}


async def refresh_due(app: App, *, margin_s: float = DEFAULT_MARGIN_S) -> list[RefreshOutcome]:
    """Refresh every active OAuth connection whose token expires within `margin_s` (the provider's loop)."""
    import asyncio

    from botctl import connections, workspaces

    now = time.time()
    due = [c for c in connections.list_all(app.vault.conn)
           if c.auth == "oauth" and c.status == "active" and c.oauth_config().get("token_url")
           and _due(c, margin_s, now) and not (c.refresh_retry_at and c.refresh_retry_at > now)]

    async def one(c: Connection) -> RefreshOutcome:
        ws = workspaces.get(app.vault.conn, c.workspace)
        if not connections.has_refresh_token(app, ws, c):
            return RefreshOutcome(c.workspace, c.connector, "not_due", "no_refresh_token")
        try:
            new = await refresh(app, ws, c, margin_s=margin_s)
        except NeedsReauth as exc:
            return RefreshOutcome(c.workspace, c.connector, "needs_reauth", exc.code, exc.message)
        except BotctlError as exc:
            return RefreshOutcome(c.workspace, c.connector, "failed", exc.code, exc.message)
        changed = new.token_generation != c.token_generation
        return RefreshOutcome(c.workspace, c.connector, "refreshed" if changed else "not_due",
                              expires_at=new.expires_at)

    return list(await asyncio.gather(*(one(c) for c in due)))


# The action engine's two entry points: the same refresh, its failures as ActionErrors.


def _action_error(exc: BotctlError, vendor_name: str) -> Exception:
    from botctl.connectors.base import ActionError

    if isinstance(exc, NeedsReauth):
        return ActionError("needs_reauth", "This tool's connection needs to be re-authorised by the workspace "
                                           "operator.")
    return ActionError("upstream_error", f"Could not refresh the {vendor_name} credential; try again later.")


async def fresh_for_action(app: App, ws: Workspace, connection: Connection) -> Connection:
    try:
        return await ensure_fresh(app, ws, connection)
    except BotctlError as exc:
        raise _action_error(exc, _vendor_name(connection.connector)) from None


async def refresh_after_401(app: App, ws: Workspace, connection: Connection) -> Connection:
    """The vendor refused the token: refresh once (joined with any refresh already under way)."""
    try:
        return await refresh(app, ws, connection, force=True)
    except BotctlError as exc:
        raise _action_error(exc, _vendor_name(connection.connector)) from None


def can_refresh(app: App, ws: Workspace, connection: Connection) -> bool:
    from botctl import connections

    return (connection.auth == "oauth" and bool(connection.oauth_config().get("token_url"))
            and connections.has_refresh_token(app, ws, connection))


# -- revoke ---------------------------------------------------------------------------------------------


async def _revoke_request(app_cfg: OAuthApp, token: Secret, hint: str) -> None:
    """RFC 7009 §2.1. 200 means revoked (or already invalid, §2.2)."""
    assert app_cfg.revoke_url
    data = {"token": token.reveal(), "token_type_hint": hint}
    headers = _client_auth(app_cfg, data, app_cfg.revoke_auth)
    status, body, _ = await _post(app_cfg.revoke_url, data, headers, what="revocation endpoint")
    if status == 200:
        return
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        hidden = _secret_values(app_cfg, data)
        raise _ServerError(_clean(body["error"], 60, secrets_=hidden),
                           _clean(str(body.get("error_description") or ""), secrets_=hidden), status)
    raise _EndpointError(f"the revocation endpoint answered HTTP {status}", sent=True, unknown=False, status=status)


async def revoke(app: App, ws: Workspace, connection: Connection, connector: Connector) -> dict[str, Any]:
    """Revoke the connection's grant at the vendor; audited (`connection.revoked`). Never raises for a
    vendor failure: the caller deletes the ciphertext whatever happened, and says so.

    Returns {"revoked": "yes" | "unsupported" | "failed: <code>", "method": "rfc7009" | "vendor" | None}."""
    from botctl import connections
    from botctl.connectors.base import ActionError
    from botctl.connectors.http import build_client

    cfg = connection.oauth_config()
    results: list[dict[str, Any]] = []
    method: str | None = None
    if cfg.get("revoke_url") and cfg.get("client_id"):
        method = "rfc7009"
        app_cfg = _stored_app(app, ws, connection)
        cred = connections.credential(app, ws, connection)
        # The refresh token first: revoking it SHOULD end the access tokens of the grant too (§2.1).
        for field_name in ("refresh_token", "access_token"):
            if field_name not in cred:
                continue
            try:
                await _revoke_request(app_cfg, cred[field_name], field_name)
                results.append({"token": field_name, "ok": True})
            except _ServerError as exc:
                # §2.2.1: a server that cannot revoke access tokens says unsupported_token_type.
                ok = exc.error == "unsupported_token_type" and field_name == "access_token"
                results.append({"token": field_name, "ok": ok, "error": exc.error})
            except _EndpointError as exc:
                results.append({"token": field_name, "ok": False, "error": "upstream_unavailable",
                                "message": exc.message})
    elif connector.revoke is not None:
        method = "vendor"
        current = connection
        if can_refresh(app, ws, connection) and not _still_valid(connection, time.time() + 30):
            try:  # the vendor's endpoint needs a working access token
                current = await refresh(app, ws, connection, force=True)
            except BotctlError:
                current = connection
        cred = {k: v for k, v in connections.credential(app, ws, current).items()
                if k in ("access_token", "api_key")}
        try:
            async with build_client(connector, current.config, cred, base_url=current.base_url) as client:
                await connector.revoke(client, current.config)
            results.append({"token": "access_token", "ok": True})
        except ActionError as exc:
            results.append({"token": "access_token", "ok": False, "error": exc.code})
    if method is None:
        revoked = "unsupported"
    elif results and all(r["ok"] for r in results):
        revoked = "yes"
    else:
        failed = [r for r in results if not r["ok"]]
        revoked = "failed: " + (failed[0].get("error") or "error") if failed else "failed: nothing to revoke"
    await app.aaudit("connection.revoked", workspace=ws.name, connector=connection.connector,
              outcome="ok" if revoked in ("yes", "unsupported") else "error",
              reason=None if revoked in ("yes", "unsupported") else revoked[len("failed: "):],
              detail={"method": method, "revoked": revoked,
                      "results": [{k: v for k, v in r.items() if k != "message"} for r in results]})
    return {"revoked": revoked, "method": method}
