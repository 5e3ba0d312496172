"""The shape of a connector and its actions.

A connector is data (vendor, category, auth, scopes, base URL shape) plus a few
async functions. The action engine (`botctl.actions`) is the only caller of
handlers; handlers get an `ActionContext` whose HTTP client already carries the
credential, so handler code never sees a secret.

Everything that differs between vendors is declared here, on the `Connector`: its
settings (`ConfigField`: checked and filled into the base URL by `connectors/urls.py`,
offered by `botctl connect --config`), which granted scopes cover a needed one
(`broader_scopes`, read by `connectors/scopes.py`) and how the credential goes on the
wire (`auth_style`, one of `AUTH_STYLES`, applied by `connectors/http.py`). Those modules
hold no vendor names (docs/adding-a-connector.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import httpx

Category = Literal["scheduling", "support", "crm", "payments", "ecommerce"]
AuthMethod = Literal["oauth", "api_key"]
ConfigKind = Literal["label", "url"]


@dataclass(frozen=True)
class AuthStyle:
    """How a stored credential is put on the wire (applied by botctl.connectors.http).

    The header value is `parts` joined by ":" — each part the first credential field of its
    alternatives that is stored, or a literal written `=X` — base64-encoded when `scheme` is
    "Basic", then prefixed by `scheme` (no prefix when it is empty)."""

    name: str
    header: str
    scheme: str
    parts: tuple[tuple[str, ...], ...]
    # The credential fields an API-key connection stores (read at connect time, in this order).
    key_fields: tuple[str, ...] = ("api_key",)


AUTH_STYLES: dict[str, AuthStyle] = {
    s.name: s
    for s in (
        # Authorization: Bearer <access_token | api_key>
        AuthStyle("bearer", "Authorization", "Bearer", (("access_token", "api_key"),)),
        # Authorization: Basic base64(<api_key>:X)
        AuthStyle("basic_key_x", "Authorization", "Basic", (("api_key",), ("=X",))),
        # Authorization: Basic base64(<api_key>:<api_secret>)
        AuthStyle(
            "basic_key_secret",
            "Authorization",
            "Basic",
            (("api_key",), ("api_secret",)),
            ("api_key", "api_secret"),
        ),
        # X-Shopify-Access-Token: <access_token | api_key>
        AuthStyle("shopify_header", "X-Shopify-Access-Token", "", (("access_token", "api_key"),)),
    )
}


@dataclass(frozen=True)
class ConfigField:
    """One non-secret setting of a connection: checked, then filled into the base URL's `{name}`.

    `label`: a single DNS label (`acme`), lower-cased, with `https://`, a trailing `/` and `suffix`
    stripped when pasted along; `url`: a bare http(s) URL (no user info, query or fragment)."""

    name: str  # the config key, the `{placeholder}` in base_url / sandbox_path, and `--config NAME=VALUE`
    kind: ConfigKind
    help: str  # what to give, e.g. "acme for acme.zendesk.com"
    suffix: str = ""  # label: stripped when pasted along, e.g. ".zendesk.com"
    default: str | None = None  # the value when none is given (the field is then optional)
    # The CLI flag this setting had before `botctl connect --config` (kept as an alias), e.g. "--subdomain".
    # New connectors leave it None: their settings are given with `--config NAME=VALUE`.
    alias: str | None = None
    # url: the sandbox path placeholder filled with the first label of the URL's host (the sandbox
    # names tenants that way), e.g. "store" for `/woocommerce/{store}`.
    sandbox_tenant: str | None = None

    @property
    def metavar(self) -> str:
        return "URL" if self.kind == "url" else "NAME"


@dataclass(frozen=True)
class VendorOAuth:
    """A vendor's OAuth authorization server as botctl's client uses it by default (docs/vendors.md); an
    operator's registered app can override any of it (`botctl oauth-app set`, botctl.oauth.apps)."""

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


def _no_broader_scopes(needed: str) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Visitor:
    """A verified visitor: every field comes from signed identity-token claims, never from params."""

    sub: str
    email: str | None = None
    name: str | None = None


class ActionError(Exception):
    """A refusal or failure with a stable code.

    Codes: identity_required, invalid_identity, forbidden, plan_required, unknown_workspace,
    unknown_action, not_connected, needs_reauth, invalid_params, rate_limited, upstream_error,
    outcome_unknown (a change that may have been applied: never "just retry"), upstream_timeout,
    missing_scope, not_found, internal_error.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        where: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        # For the operator only (connect / test), never a visitor: the URL tried and why it failed.
        self.where = where


@dataclass
class ActionContext:
    """What a handler gets. `client` has base_url = the connection's base URL and injects the credential."""

    client: httpx.AsyncClient
    params: dict[str, Any]
    visitor: Visitor | None
    # Non-secret connection settings, e.g. {"subdomain": "acme"} or {"site": "https://shop.example"}.
    config: Mapping[str, str]
    request_id: str
    # Filled by the handler for the audit record: upstream status codes seen, object ids touched.
    audit: dict[str, Any] = field(default_factory=dict)

    def require_visitor(self) -> Visitor:
        if self.visitor is None or not self.visitor.email:
            raise ActionError("identity_required", "This action needs a signed-in visitor.")
        return self.visitor


Handler = Callable[[ActionContext], Awaitable[Any]]


@dataclass(frozen=True)
class Action:
    name: str  # short name, e.g. "list_my_orders"; full name is "<connector>.<name>"
    description: str
    params: Mapping[str, Any]  # JSON Schema (type object, additionalProperties false)
    customer_specific: bool
    scopes: tuple[str, ...]
    idempotent: bool
    handler: Handler
    # Whether it may change something at the vendor (default: what is not idempotent). A write is
    # recorded as started before the vendor is called (botctl/intents.py).
    writes: bool | None = None

    @property
    def is_write(self) -> bool:
        return (not self.idempotent) if self.writes is None else self.writes


@dataclass(frozen=True)
class Connector:
    name: str  # "zendesk"
    vendor: str  # "Zendesk"
    category: Category
    auth: AuthMethod
    auth_style: str  # a key of AUTH_STYLES: how the credential goes on the wire
    scopes: tuple[str, ...]  # default scopes requested at connect time
    # Base URL with {placeholders} filled from config, e.g. "https://{subdomain}.zendesk.com".
    base_url: str
    # The settings the user supplies at connect time (`botctl connect --config NAME=VALUE`, or the
    # field's alias flag), one per placeholder of base_url.
    config: tuple[ConfigField, ...]
    # Path of this vendor in the sandbox, with the same placeholders: e.g. "/zendesk/{subdomain}".
    sandbox_path: str
    # Extra headers every request carries, e.g. {"cal-api-version": "2024-08-13"}.
    default_headers: Mapping[str, str]
    # "Who am I": called with an authenticated client at connect/test time. Returns an account label
    # (e.g. "Acme Support (admin@acme.test)"); raises ActionError (needs_reauth on 401/403, ...).
    validate: Callable[[httpx.AsyncClient, Mapping[str, str]], Awaitable[str]]
    actions: tuple[Action, ...]
    docs_url: str = ""
    # Revocation for disconnect; None when the vendor has no revocation endpoint for this auth method.
    revoke: Callable[[httpx.AsyncClient, Mapping[str, str]], Awaitable[None]] | None = None
    # The granted scopes, besides `needed` itself and "*", that cover `needed` (a write scope that
    # implies its read, a broad "read" covering "tickets:read"). Default: none.
    broader_scopes: Callable[[str], Iterable[str]] = _no_broader_scopes
    # An OAuth connector's authorization-server defaults, read by botctl.oauth through
    # `registry.oauth_clients()`; None for an API-key connector.
    oauth_client: VendorOAuth | None = None

    def __post_init__(self) -> None:
        if self.auth_style not in AUTH_STYLES:
            raise ValueError(
                f"{self.name}: unknown auth_style {self.auth_style!r} (one of {', '.join(AUTH_STYLES)})"
            )

    @property
    def config_fields(self) -> tuple[str, ...]:
        """The names of the settings, e.g. ("subdomain",)."""
        return tuple(f.name for f in self.config)

    def config_field(self, name: str) -> ConfigField | None:
        return next((f for f in self.config if f.name == name), None)

    @property
    def wire_style(self) -> AuthStyle:
        return AUTH_STYLES[self.auth_style]

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The credential fields an API-key connection stores, e.g. ("api_key", "api_secret")."""
        return self.wire_style.key_fields

    def action(self, short_name: str) -> Action | None:
        for a in self.actions:
            if a.name == short_name:
                return a
        return None
