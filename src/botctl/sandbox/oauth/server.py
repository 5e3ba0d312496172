"""authlib's authorization-server core, wired to Starlette (authlib ships server integrations for
Flask and Django only; its `starlette_client` is a client).

As in authlib's Flask/Django integrations, `VendorAuthorizationServer` subclasses
`authlib.oauth2.AuthorizationServer` and implements `create_oauth2_request` / `handle_response`.
Starlette reads bodies asynchronously and authlib is synchronous, so the route handler reads the
body first and hands authlib a ready `SandboxOAuth2Request`; authlib's calls then run on the event
loop without awaiting (in-memory, fast), which also makes each one atomic.

The request/response adapters are in `adapters.py`, the grants and endpoints in `grants.py`.

authlib pieces used: `AuthorizationCodeGrant` + `CodeChallenge` (RFC 7636, narrowed to S256),
`RefreshTokenGrant` (`INCLUDE_NEW_REFRESH_TOKEN`, rotation and reuse detection added here),
`DeviceCodeGrant` + `DeviceAuthorizationEndpoint` (RFC 8628), `RevocationEndpoint` (RFC 7009),
`IssuerParameter` (RFC 9207), `BearerTokenGenerator` (RFC 6750), `ClientAuthentication`
(`client_secret_basic`, `client_secret_post`, `none`), and `AuthorizationServerMetadata`
(RFC 8414) in the tests.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenGenerator

from botctl.sandbox import seed
from botctl.sandbox.oauth.models import (
    AuthorizationCode,
    DeviceCredential,
    Family,
    OAuthStore,
    RefreshToken,
)
from botctl.sandbox.oauth.profiles import (
    DEVICE_GRANT,
    USER,
    Profile,
    oauth_vendors,
)

from .adapters import OAuthResponse, SandboxOAuth2Request
from .grants import (
    CodeGrant,
    DeviceAuthorization,
    DeviceGrant,
    Revocation,
    RotatingRefreshGrant,
    S256CodeChallenge,
    SandboxIssuerParameter,
)

if TYPE_CHECKING:
    from botctl.sandbox.state import SandboxState
    from botctl.sandbox.vendors.base import Vendor


# --- the server ------------------------------------------------------------------------------------------


class VendorAuthorizationServer(AuthorizationServer):
    def __init__(self, hub: OAuthHub, profile: Profile) -> None:
        super().__init__(scopes_supported=list(profile.scopes))
        self.hub = hub
        self.profile = profile
        self.vendor = profile.vendor
        self.prefix = hub.vendor(profile.vendor).prefix(seed.TENANT)
        self.current_issuer: str | None = None
        self.current_request: SandboxOAuth2Request | None = None
        self.pending_child: str | None = None
        self.register_token_generator(
            "default",
            BearerTokenGenerator(self._new_access_token, self._new_refresh_token, self._expires_in),
        )
        self.register_grant(CodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RotatingRefreshGrant)
        self.register_grant(DeviceGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(DeviceAuthorization)
        self.issuer_extension = SandboxIssuerParameter()
        self.register_extension(self.issuer_extension)

    # -- plumbing ------------------------------------------------------------------------------------

    @property
    def state(self) -> SandboxState:
        return self.hub.state

    @property
    def store(self) -> OAuthStore:
        return self.hub.stores[self.vendor]

    def now(self) -> float:
        return self.state.clock()

    def issuer(self, origin: str) -> str:
        return origin + self.prefix

    def bind(self, request: SandboxOAuth2Request) -> SandboxOAuth2Request:
        """Remember the request being handled (its origin makes the issuer and page URLs)."""
        self.current_request = request
        self.current_issuer = self.issuer(request.origin)
        return request

    def query_client(self, client_id: str) -> Any:
        return self.store.clients.get(client_id)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, SandboxOAuth2Request):
            return self.bind(request)
        raise TypeError("pass a SandboxOAuth2Request (read the Starlette body first)")

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResponse:
        return OAuthResponse(status, body, headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def add_authorization_response_params(self, response: OAuthResponse) -> OAuthResponse:
        """For error redirects made outside `create_authorization_response` (failed validation
        before consent): the same RFC 9207 treatment."""
        self.issuer_extension.add_issuer_parameter(self, response)
        return response

    # -- tokens --------------------------------------------------------------------------------------

    def _new_access_token(self, **_: Any) -> str:
        p = self.profile
        body = (
            secrets.token_hex(p.access_token_hex_bytes)
            if p.access_token_hex_bytes
            else secrets.token_urlsafe(48)
        )
        return p.access_token_prefix + body

    def _new_refresh_token(self, **_: Any) -> str:
        token = secrets.token_urlsafe(40)
        self.pending_child = token
        return token

    def _expires_in(self, client: Any, grant_type: str) -> int:
        ttl = self.state.token_ttl
        return self.profile.access_ttl if ttl is None else ttl

    def save_token(self, token: dict[str, Any], request: SandboxOAuth2Request) -> None:
        """Register the access token with the sandbox's token registry (so the vendor API accepts
        it), record the refresh token in its grant family, and shape the response like the vendor's."""
        p, store, now = self.profile, self.store, self.now()
        data = request.payload.data
        client_id = request.client.get_client_id()
        scope = token.get("scope") or ""
        family: Family
        if request.authorization_code is not None:
            code: AuthorizationCode = request.authorization_code
            family = store.new_family(client_id, scope, "authorization_code", now)
            code.family_id = family.id
        elif request.refresh_token is not None:
            family = store.families[request.refresh_token.family_id]
        else:
            family = store.new_family(client_id, scope, "device_code", now)
            request.credential.status = "consumed"  # device codes are single-use

        ttl: int | None = self._expires_in(request.client, request.payload.grant_type)
        refresh_ttl = p.refresh_ttl
        if p.requested_lifetimes is not None:
            # The token request may set the lifetimes, within the vendor's bounds.
            (low, high), (refresh_low, refresh_high) = p.requested_lifetimes
            ttl = _clamped(data.get("expires_in"), low, high, ttl)
            refresh_ttl = _clamped(
                data.get("refresh_token_expires_in"), refresh_low, refresh_high, refresh_ttl
            )
        expiring = True
        if (
            p.offline_unless_expiring
            and request.authorization_code is not None
            and data.get("expiring") != "1"
        ):
            expiring = False  # a legacy non-expiring offline token: no expiry, no refresh token

        vendor = self.hub.vendor(p.vendor)
        subject: dict[str, Any] = {"client_id": client_id, "family_id": family.id, "email": USER.email}
        subject.update(vendor.oauth_token_subject(self, request.client))
        record = self.state.tokens.issue_access_token(
            p.vendor,
            scope.split(),
            ttl if expiring else None,
            tenant=self.hub.tenant_for(p.vendor),
            subject=subject,
            token=token["access_token"],
        )
        if not expiring:
            record.expires_at = None
        family.access_tokens.append(record.token)

        refresh = token.get("refresh_token") if expiring else None
        if refresh:
            store.refresh_tokens[refresh] = RefreshToken(
                token=refresh,
                family_id=family.id,
                client_id=client_id,
                scope=scope,
                issued_at=now,
                expires_at=None if refresh_ttl is None else now + refresh_ttl,
                access_token=record.token,
                clock=self.now,
            )
            family.refresh_tokens.append(refresh)
            self.pending_child = refresh
        else:
            token.pop("refresh_token", None)
            self.pending_child = None

        # Shape the response like the vendor's.
        token.pop("expires_in", None)
        if expiring and ttl is not None:
            token["expires_in"] = int(ttl)
        if p.token_type is None:
            token.pop("token_type", None)
        else:
            token["token_type"] = p.token_type
        token["scope"] = p.format_scope(scope.split())
        if refresh and refresh_ttl is not None and p.refresh_expiry_in_response:
            token["refresh_token_expires_in"] = int(refresh_ttl)
        token.update(vendor.oauth_token_extras(request.origin, now))

    # -- RFC 9207 / Shopify ----------------------------------------------------------------------------

    def create_authorization_response(
        self, request: Any = None, grant_user: Any = None, grant: Any = None
    ) -> Any:
        if isinstance(request, SandboxOAuth2Request):
            self.bind(request)
        return super().create_authorization_response(request, grant_user, grant)

    # -- RFC 8414 ---------------------------------------------------------------------------------------

    def metadata(self, origin: str) -> dict[str, Any]:
        p = self.profile
        root = self.issuer(origin)
        grant_types = ["authorization_code", "refresh_token"]
        auth_methods = [*p.token_auth_methods, "none"] if p.public else list(p.token_auth_methods)
        data: dict[str, Any] = {
            "issuer": root,
            "authorization_endpoint": root + p.authorize_path,
            "token_endpoint": root + p.token_path,
            "revocation_endpoint": root + p.revoke_path,
            "scopes_supported": list(p.scopes),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": grant_types,
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": (
                [*p.revocation_auth_methods, "none"] if p.public else list(p.revocation_auth_methods)
            ),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }
        if self.hub.device_enabled(p.vendor):
            grant_types.append(DEVICE_GRANT)
            data["device_authorization_endpoint"] = root + p.device_authorization_path
        return data


def _clamped(value: str | None, low: int, high: int, default: int | None) -> int | None:
    if value is None or not str(value).strip().isdigit():
        return default
    return max(low, min(high, int(value)))


class OAuthHub:
    """The authorization servers of the app's vendors that have one, and their data."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.profiles = {
            v.name: v.oauth_profile for v in oauth_vendors(state.vendors.values()) if v.oauth_profile
        }
        self.servers = {name: VendorAuthorizationServer(self, p) for name, p in self.profiles.items()}
        self.stores: dict[str, OAuthStore] = {}
        self.reset()

    def reset(self) -> None:
        self.stores = {name: OAuthStore(p) for name, p in self.profiles.items()}

    def vendor(self, name: str) -> Vendor:
        return self.state.vendors[name]

    def event(self, vendor: str, name: str) -> None:
        self.state.stats.record_oauth_event(vendor, name)

    def device_enabled(self, vendor: str) -> bool:
        return vendor in self.state.config.device_flow

    def tenant_for(self, vendor: str) -> str | None:
        return self.state.tenant if self.state.vendors[vendor].tenant_param else None

    def revoke_family(self, vendor: str, family_id: str, reason: str) -> None:
        store = self.stores[vendor]
        family = store.families.get(family_id)
        if family is None:
            return
        if not family.revoked:
            family.revoked, family.revoked_reason = True, reason
        for token in family.access_tokens:
            self.state.tokens.revoke(token, vendor)
        for token in family.refresh_tokens:
            store.refresh_tokens[token].status = "revoked"

    def revoke_client(self, vendor: str, client_id: str) -> int:
        """Every grant of one client (Shopify uninstall). Returns how many grants were revoked."""
        families = [f for f in self.stores[vendor].families.values() if f.client_id == client_id]
        for family in families:
            self.revoke_family(vendor, family.id, "uninstalled")
        return len(families)

    def find_device(self, user_code: str) -> tuple[str, DeviceCredential] | None:
        for vendor, store in self.stores.items():
            credential = store.device_by_user_code(user_code)
            if credential is not None:
                return vendor, credential
        return None

    def decide_device(self, credential: DeviceCredential, approve: bool) -> str | None:
        """Approve or deny a pending device code; an error string when that is no longer possible."""
        if credential.is_expired():
            return "expired_token"
        if credential.status != "pending":
            return "already_decided"
        credential.status = "approved" if approve else "denied"
        return None
