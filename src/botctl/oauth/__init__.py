"""OAuth 2.0 for the OAuth connectors (Calendly, Zendesk, HubSpot, Shopify): connect, refresh, revoke.

One job per module; everything is re-exported here, so `from botctl import oauth; oauth.X` works:

* `clients`: the vendors' defaults (`vendors()`, declared by the connectors) and `OAuthApp`, the client resolved for one connection;
* `protocol`: token / device / revocation requests, RFC 8414 metadata, the 1 MiB answer cap, what an
  answer means (`ServerError`, `EndpointError`), and the exit statuses 24 (denied), 25 (state or iss
  mismatch, replay), 26 (no approval before the timeout);
* `listener`: PKCE, `state`, `AuthRequest` and its redirect checks, the loopback listener;
* `flows`: the browser, `--no-browser`, `--paste` and device flows, `FlowUI`;
* `connecting`: `app_for` (which client) and `connect`;
* `refreshing`: single-flight, leased, rotation-safe refresh; `ensure_fresh`, `refresh_due` and the
  action engine's two entry points;
* `revoking`: `revoke` (RFC 7009, else the vendor's own endpoint);
* `apps`: bring-your-own OAuth apps.

Module constants (timeouts, lease, backoff) are read where they are defined: patch them there.
httpx and rich are imported inside functions only (start-up time is a feature).
"""

from botctl.errors import BotctlError, CredentialRejected, NeedsReauth, NotFound, Transient, UsageError
from botctl.oauth.clients import (
    DEFAULT_REDIRECT_PATH,
    TOKEN_AUTH_METHODS,
    OAuthApp,
    VendorOAuth,
    check_endpoint,
    check_redirect_uri,
    effective_app,
    split_scopes,
    vendor,
    vendors,
    with_redirect_port,
)
from botctl.oauth.connecting import ConnectResult, app_for, connect, sandbox_app
from botctl.oauth.flows import (
    DEFAULT_TIMEOUT_S,
    Authorization,
    Clock,
    FlowUI,
    Sleep,
    browser_available,
    browser_flow,
    device_flow,
    exchange_code,
    open_browser,
    paste_flow,
)
from botctl.oauth.listener import (
    AuthRequest,
    Callback,
    LoopbackListener,
    new_state,
    new_verifier,
    parse_pasted,
    parse_query,
    s256,
)
from botctl.oauth.protocol import (
    DEVICE_GRANT,
    EXIT_DENIED,
    EXIT_MISMATCH,
    EXIT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    REQUEST_TIMEOUT_S,
    TOTAL_DEADLINE_S,
    AuthorizationDenied,
    AuthorizationTimeout,
    CallbackRejected,
    EndpointError,
    ResponseTooLarge,
    ServerError,
    TokenSet,
    apply_metadata,
    fetch_metadata,
    read_capped,
    revoke_request,
    token_request,
)
from botctl.oauth.refreshing import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    DEFAULT_MARGIN_S,
    LEASE_POLL_S,
    LEASE_TTL_S,
    RefreshOutcome,
    can_refresh,
    ensure_fresh,
    fresh_for_action,
    refresh,
    refresh_after_401,
    refresh_attempts,
    refresh_due,
)
from botctl.oauth.revoking import revoke
from botctl.secret import Secret

# The names these had when they were private to one module (tests reach for them).
_EndpointError = EndpointError
_ServerError = ServerError
_revoke_request = revoke_request
_token_request = token_request

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "DEFAULT_MARGIN_S",
    "DEFAULT_REDIRECT_PATH",
    "DEFAULT_TIMEOUT_S",
    "DEVICE_GRANT",
    "EXIT_DENIED",
    "EXIT_MISMATCH",
    "EXIT_TIMEOUT",
    "LEASE_POLL_S",
    "LEASE_TTL_S",
    "MAX_RESPONSE_BYTES",
    "REQUEST_TIMEOUT_S",
    "TOKEN_AUTH_METHODS",
    "TOTAL_DEADLINE_S",
    "AuthRequest",
    "Authorization",
    "AuthorizationDenied",
    "AuthorizationTimeout",
    "BotctlError",
    "Callback",
    "CallbackRejected",
    "Clock",
    "ConnectResult",
    "CredentialRejected",
    "EndpointError",
    "FlowUI",
    "LoopbackListener",
    "NeedsReauth",
    "NotFound",
    "OAuthApp",
    "RefreshOutcome",
    "ResponseTooLarge",
    "Secret",
    "ServerError",
    "Sleep",
    "TokenSet",
    "Transient",
    "UsageError",
    "VendorOAuth",
    "_EndpointError",
    "_ServerError",
    "_revoke_request",
    "_token_request",
    "app_for",
    "apply_metadata",
    "browser_available",
    "browser_flow",
    "can_refresh",
    "check_endpoint",
    "check_redirect_uri",
    "connect",
    "device_flow",
    "effective_app",
    "ensure_fresh",
    "exchange_code",
    "fetch_metadata",
    "fresh_for_action",
    "new_state",
    "new_verifier",
    "open_browser",
    "parse_pasted",
    "parse_query",
    "paste_flow",
    "read_capped",
    "refresh",
    "refresh_after_401",
    "refresh_attempts",
    "refresh_due",
    "revoke",
    "revoke_request",
    "s256",
    "sandbox_app",
    "split_scopes",
    "token_request",
    "vendor",
    "vendors",
    "with_redirect_port",
]
