# ruff: noqa: S105  (sandbox-only fake client secrets: they open nothing but this local fake)
"""What differs between the four vendors' OAuth servers (CONNECTORS.md §1.1, §3.1, §5.1, §7.1).

Paths are relative to the vendor's sandbox prefix (`/calendly`, `/zendesk/{subdomain}`, `/hubspot`,
`/shopify/{shop}`), mirroring the real hosts:

    calendly  https://auth.calendly.com/oauth/{authorize,token,revoke}     -> /calendly/oauth/...
    zendesk   https://{sub}.zendesk.com/oauth/{authorizations/new,tokens}  -> /zendesk/{sub}/oauth/...
    hubspot   https://app.hubspot.com/oauth/authorize                      -> /hubspot/oauth/authorize
              https://api.hubapi.com/oauth/{v1,v3}/token, /oauth/v3/token/revoke -> /hubspot/oauth/...
    shopify   https://{shop}.myshopify.com/admin/oauth/{authorize,access_token}  -> /shopify/{shop}/admin/oauth/...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botctl.sandbox import credentials, seed

DAY = 86400
METADATA_PATH = "/.well-known/oauth-authorization-server"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Short names used in stats (`token_grants`) for each grant type.
GRANT_NAMES = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    DEVICE_GRANT: "device_code",
}

# Registered for every client: RFC 8252 §7.3 loopback redirects, any port at request time.
REDIRECT_URIS = (
    "http://127.0.0.1/callback",
    "http://127.0.0.1/botctl/callback",
    "http://[::1]/callback",
    "http://[::1]/botctl/callback",
)


@dataclass(frozen=True)
class ClientSpec:
    client_id: str
    client_secret: str | None  # None: a public (native) client, auth method "none", PKCE required
    name: str
    # Zendesk's API shows clients by a numeric id besides the "unique identifier" used in the flow.
    numeric_id: int = 0


@dataclass(frozen=True)
class Profile:
    vendor: str
    title: str
    authorize_path: str
    token_path: str
    revoke_path: str
    # The token endpoint's client authentication for confidential clients (RFC 7591 names).
    token_auth_methods: tuple[str, ...]
    revocation_auth_methods: tuple[str, ...]
    scopes: tuple[str, ...]
    access_ttl: int
    refresh_ttl: int | None
    confidential: ClientSpec
    public: ClientSpec | None = None
    token_aliases: tuple[str, ...] = ()
    # Paths where the real vendor has no RFC 7009 endpoint / no device flow: sandbox affordances.
    revoke_is_extension: bool = False
    scope_separator: str = " "
    token_type: str | None = "Bearer"
    # Shopify (since 2026-08-28): the previous refresh token stays valid until its replacement is
    # first used, so a lost refresh response can be retried with the old token.
    rotation_grace: bool = False
    # Zendesk: "a successful request will also ... delete the previous access and refresh tokens".
    refresh_revokes_previous_access: bool = False
    # Zendesk takes a JSON body on /oauth/tokens as well as a form.
    json_token_body: bool = False
    # Shopify's code exchange has no grant_type parameter.
    implicit_code_grant_type: bool = False
    access_token_prefix: str = ""
    access_token_hex: bool = False
    extra_paths: dict[str, str] = field(default_factory=dict)

    @property
    def device_authorization_path(self) -> str:
        return self.authorize_path.rsplit("/oauth/", 1)[0] + "/oauth/device_authorization"

    @property
    def device_verification_path(self) -> str:
        return self.authorize_path.rsplit("/oauth/", 1)[0] + "/oauth/device"

    def clients(self) -> list[ClientSpec]:
        return [self.confidential] + ([self.public] if self.public else [])

    def format_scope(self, scopes: Iterable[str]) -> str:
        return self.scope_separator.join(scopes)


PROFILES: dict[str, Profile] = {
    "calendly": Profile(
        vendor="calendly",
        title="Calendly",
        authorize_path="/oauth/authorize",
        token_path="/oauth/token",
        revoke_path="/oauth/revoke",
        # "Web clients send client_id:client_secret as Basic auth; native clients send client_id in
        # the body"; revoke takes client_id/client_secret in the body.
        token_auth_methods=("client_secret_basic",),
        revocation_auth_methods=("client_secret_basic", "client_secret_post"),
        scopes=credentials.CALENDLY_SCOPES,
        access_ttl=2 * 3600,
        refresh_ttl=None,  # "don't expire until they are used"
        confidential=ClientSpec(
            "sbx-calendly-web-6b1f2c9d4e7a",
            "sbx-calendly-secret-3f8e1d2c7b6a5940e1d2c3b4a5968778",
            "botctl (web)",
        ),
        public=ClientSpec("sbx-calendly-native-0d9c8b7a6f5e", None, "botctl (native)"),
    ),
    "zendesk": Profile(
        vendor="zendesk",
        title="Zendesk",
        authorize_path="/oauth/authorizations/new",
        token_path="/oauth/tokens",
        revoke_path="/oauth/revoke",
        revoke_is_extension=True,
        token_auth_methods=("client_secret_post",),
        revocation_auth_methods=("client_secret_post",),
        scopes=(
            "read",
            "write",
            "impersonate",
            "tickets:read",
            "tickets:write",
            "users:read",
            "users:write",
            "organizations:read",
            "organizations:write",
        ),
        access_ttl=30 * 60,
        refresh_ttl=30 * DAY,
        confidential=ClientSpec(
            "botctl_sandbox",
            "5c1b0e8f2d4a6c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e",
            "botctl",
            numeric_id=360000001,
        ),
        public=ClientSpec("botctl_sandbox_native", None, "botctl (native)", numeric_id=360000002),
        token_type="bearer",
        refresh_revokes_previous_access=True,
        json_token_body=True,
        access_token_hex=True,
    ),
    "hubspot": Profile(
        vendor="hubspot",
        title="HubSpot",
        authorize_path="/oauth/authorize",
        token_path="/oauth/v3/token",
        token_aliases=("/oauth/v1/token",),
        revoke_path="/oauth/v3/token/revoke",
        token_auth_methods=("client_secret_post",),
        revocation_auth_methods=("client_secret_post",),
        scopes=(
            "oauth",
            "crm.objects.contacts.read",
            "crm.objects.contacts.write",
            "crm.objects.companies.read",
            "tickets",
        ),
        access_ttl=30 * 60,
        refresh_ttl=None,
        confidential=ClientSpec(
            "5f0c7e2a-3b1d-4c8e-9a6f-0d2b4e6a8c1f", "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "botctl"
        ),
        token_type="bearer",
        access_token_prefix="COx",
        extra_paths={"refresh_tokens_v1": "/oauth/v1/refresh-tokens"},
    ),
    "shopify": Profile(
        vendor="shopify",
        title="Shopify",
        authorize_path="/admin/oauth/authorize",
        token_path="/admin/oauth/access_token",
        revoke_path="/admin/oauth/revoke",
        revoke_is_extension=True,
        token_auth_methods=("client_secret_post",),
        revocation_auth_methods=("client_secret_post",),
        scopes=(*credentials.SHOPIFY_SCOPES, "write_orders", "read_returns"),
        access_ttl=3600,
        refresh_ttl=90 * DAY,  # refresh_token_expires_in: 7776000
        confidential=ClientSpec(
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "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", "botctl"
        ),
        scope_separator=",",
        token_type=None,  # Shopify's token response has no token_type
        rotation_grace=True,
        implicit_code_grant_type=True,
        access_token_prefix="shpat_",
        access_token_hex=True,
        extra_paths={"uninstall": "/admin/api_permissions/current.json"},
    ),
}

OAUTH_VENDORS = tuple(PROFILES)
DEFAULT_DEVICE_FLOW = ("zendesk", "hubspot")


@dataclass(frozen=True)
class SandboxUser:
    """The resource owner who approves on the consent page: the seeded account's admin."""

    id: int = seed.ZENDESK_AGENT_ID
    email: str = seed.ACCOUNT_EMAIL
    name: str = seed.ACCOUNT_NAME

    def get_user_id(self) -> int:
        return self.id


USER = SandboxUser()


def vendor_prefix(vendor: str) -> str:
    """The sandbox path standing in for the vendor's host (tenant vendors: the seeded tenant)."""
    return f"/{vendor}/{seed.TENANT}" if vendor in ("zendesk", "shopify") else f"/{vendor}"


def describe(base_url: str, vendor: str, *, device_enabled: bool) -> dict[str, Any]:
    """The `oauth` block of `GET /_sandbox/credentials` for one vendor."""
    p = PROFILES[vendor]
    root = base_url.rstrip("/") + vendor_prefix(vendor)
    extensions = ["metadata_url"] if vendor != "calendly" else []
    if p.revoke_is_extension:
        extensions.append("revoke_url")
    out: dict[str, Any] = {
        "issuer": root,
        "client_id": p.confidential.client_id,
        "client_secret": p.confidential.client_secret,
        "authorize_url": root + p.authorize_path,
        "token_url": root + p.token_path,
        "revoke_url": root + p.revoke_path,
        "metadata_url": root + METADATA_PATH,
        "token_endpoint_auth_method": p.token_auth_methods[0],
        "scopes": list(p.scopes),
        "scope_separator": p.scope_separator,
        "redirect_uris": list(REDIRECT_URIS),
        "code_challenge_methods": ["S256"],
        "access_token_ttl": p.access_ttl,
        "refresh_token_ttl": p.refresh_ttl,
    }
    if p.public is not None:
        out["public_client_id"] = p.public.client_id
    if device_enabled:
        out["device_url"] = root + p.device_authorization_path
        out["device_verification_url"] = root + p.device_verification_path
        extensions += ["device_url", "device_verification_url"]
    if vendor == "zendesk":
        out["token_info_url"] = root + "/api/v2/oauth/tokens/current.json"
        out["token_delete_url"] = root + "/api/v2/oauth/tokens/{id}.json"
    elif vendor == "hubspot":
        out["token_url_v1"] = root + "/oauth/v1/token"
        out["refresh_token_url_v1"] = root + p.extra_paths["refresh_tokens_v1"] + "/{refresh_token}"
        out["introspect_url"] = root + "/oauth/v3/token/introspect"
    elif vendor == "shopify":
        out["uninstall_url"] = root + p.extra_paths["uninstall"]
    out["sandbox_extensions"] = extensions
    return out
