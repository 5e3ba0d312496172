"""What differs between the vendors' OAuth servers: the `Profile` each vendor module declares
(`Vendor.oauth_profile`), and what is shared (redirect URIs, the consenting user, metadata path).

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
from typing import TYPE_CHECKING, Any

from botctl.sandbox import seed

if TYPE_CHECKING:
    from botctl.sandbox.vendors.base import Vendor

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
    # Access tokens as this many random bytes in hex; 0: URL-safe base64 of 48 bytes.
    access_token_hex_bytes: int = 0
    extra_paths: dict[str, str] = field(default_factory=dict)
    # The sandbox offers its device flow here unless configured otherwise (no real vendor has one).
    device_flow_default: bool = False
    # The real vendor publishes RFC 8414 metadata (elsewhere the sandbox's is an extension).
    publishes_metadata: bool = False
    # Zendesk: the token request may set lifetimes, clamped to (access (min, max), refresh (min, max)).
    requested_lifetimes: tuple[tuple[int, int], tuple[int, int]] | None = None
    # Shopify: a code exchange without `expiring=1` gets a legacy non-expiring offline token.
    offline_unless_expiring: bool = False
    # The token response carries `refresh_token_expires_in`.
    refresh_expiry_in_response: bool = False

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


@dataclass(frozen=True)
class SandboxUser:
    """The resource owner who approves on the consent page: the seeded account's admin."""

    id: int = seed.ZENDESK_AGENT_ID
    email: str = seed.ACCOUNT_EMAIL
    name: str = seed.ACCOUNT_NAME

    def get_user_id(self) -> int:
        return self.id


USER = SandboxUser()


def oauth_vendors(vendors: Iterable[Vendor]) -> list[Vendor]:
    """The vendors with an OAuth authorization server, in the order given."""
    return [v for v in vendors if v.oauth_profile is not None]


def oauth_vendor_names(vendors: Iterable[Vendor]) -> tuple[str, ...]:
    return tuple(v.name for v in oauth_vendors(vendors))


def default_device_flow(vendors: Iterable[Vendor]) -> tuple[str, ...]:
    """The vendors whose sandbox server offers the device flow unless configured otherwise."""
    return tuple(
        v.name for v in oauth_vendors(vendors) if v.oauth_profile and v.oauth_profile.device_flow_default
    )


def describe(base_url: str, vendor: Vendor, *, device_enabled: bool) -> dict[str, Any]:
    """The `oauth` block of `GET /_sandbox/credentials` for one vendor."""
    p = vendor.oauth_profile
    assert p is not None
    root = base_url.rstrip("/") + vendor.prefix(seed.TENANT)
    extensions = [] if p.publishes_metadata else ["metadata_url"]
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
    out.update(vendor.oauth_describe(root))
    out["sandbox_extensions"] = extensions
    return out
