"""The shape of a connector and its actions.

A connector is data (vendor, category, auth, scopes, base URL shape) plus a few
async functions. The action engine (`botctl.actions`) is the only caller of
handlers; handlers get an `ActionContext` whose HTTP client already carries the
credential, so handler code never sees a secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import httpx

Category = Literal["scheduling", "support", "crm", "payments", "ecommerce"]
AuthMethod = Literal["oauth", "api_key"]
# How the credential is put on the wire (see botctl.connectors.http).
#   bearer          Authorization: Bearer <access_token | api_key>
#   basic_key_x     Authorization: Basic base64(<api_key>:X)           (Freshdesk)
#   basic_key_secret Authorization: Basic base64(<api_key>:<api_secret>) (WooCommerce)
#   shopify_header  X-Shopify-Access-Token: <access_token>              (Shopify)
AuthStyle = Literal["bearer", "basic_key_x", "basic_key_secret", "shopify_header"]


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
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.upstream_status = upstream_status


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
    auth_style: AuthStyle
    scopes: tuple[str, ...]  # default scopes requested at connect time
    # Base URL with {placeholders} filled from config, e.g. "https://{subdomain}.zendesk.com".
    base_url: str
    # The config fields the user supplies at connect time, e.g. ("subdomain",). Each maps to --<field>.
    config_fields: tuple[str, ...]
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

    def action(self, short_name: str) -> Action | None:
        for a in self.actions:
            if a.name == short_name:
                return a
        return None
