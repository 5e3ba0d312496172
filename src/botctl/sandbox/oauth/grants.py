"""The grants and endpoints of the sandbox's authorization servers: S256-only PKCE, single-use codes, rotating refresh tokens, the device flow, revocation, RFC 9207 iss."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oauth2.rfc9207 import IssuerParameter

from botctl.sandbox.oauth.models import (
    AccessTokenRef,
    AuthorizationCode,
    DeviceCredential,
    OAuthStore,
    RefreshToken,
)
from botctl.sandbox.oauth.profiles import (
    USER,
    SandboxUser,
)

from .adapters import SandboxOAuth2Request

if TYPE_CHECKING:
    from botctl.sandbox.oauth.server import VendorAuthorizationServer


# --- grants and endpoints ----------------------------------------------------------------------------


class _VendorAuthMethods:
    """Token-endpoint client authentication as the vendor does it, plus `none` for public clients."""

    server: VendorAuthorizationServer

    @property
    def TOKEN_ENDPOINT_AUTH_METHODS(self) -> list[str]:  # noqa: N802 (authlib's attribute name)
        return [*self.server.profile.token_auth_methods, "none"]


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1). A challenge without a method would default to
    `plain` (RFC 7636 §4.3), so it is refused too. Public clients must send a challenge.
    Downgrade protection (verifier without challenge -> invalid_request) is authlib's own."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge and not method:
            if grant.request.client is not None and grant.request.client.is_public:
                raise InvalidRequestError("Public clients must use PKCE: send code_challenge (S256).")
            return
        if challenge and not method:
            raise InvalidRequestError("Missing 'code_challenge_method': only S256 is supported.")
        if method and method != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(_VendorAuthMethods, AuthorizationCodeGrant):
    server: VendorAuthorizationServer

    def save_authorization_code(self, code: str, request: SandboxOAuth2Request) -> None:
        data = request.payload.data
        self.server.store.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=data.get("redirect_uri"),
            scope=request.scope,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            expires_at=self.server.now() + OAuthStore.CODE_TTL,
        )

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        record = self.server.store.codes.get(code)
        if record is None or record.client_id != client.get_client_id():
            return None
        if record.used:
            # RFC 6749 §4.1.2: deny a reused code and revoke the tokens issued from it.
            if record.family_id:
                self.server.hub.revoke_family(self.server.vendor, record.family_id, "code_replay")
            self.server.hub.event(self.server.vendor, "code_replay")
            raise InvalidGrantError("The authorization code was already used; its tokens are revoked.")
        if self.server.now() >= record.expires_at:
            raise InvalidGrantError("The authorization code expired.")
        if self.server.profile.implicit_code_grant_type and record.redirect_uri:
            # Shopify's code exchange has no redirect_uri parameter; one that is sent must match.
            self.request.payload.set_default("redirect_uri", record.redirect_uri)
        return record

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        authorization_code.used = True  # kept, to recognise a replay

    def authenticate_user(self, authorization_code: AuthorizationCode) -> SandboxUser:
        return USER


class RotatingRefreshGrant(_VendorAuthMethods, RefreshTokenGrant):
    """Refresh-token rotation (RFC 9700 §4.14.2): every refresh answers a new refresh token and
    invalidates the old one; presenting an already-rotated token revokes the whole grant family."""

    INCLUDE_NEW_REFRESH_TOKEN = True
    server: VendorAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        server = self.server
        record = server.store.refresh_tokens.get(refresh_token)
        if record is None:
            return None
        family = server.store.families.get(record.family_id)
        if record.status == "revoked" or family is None or family.revoked:
            return None
        if record.is_expired():
            raise InvalidGrantError("The refresh token expired.")
        if record.status == "rotated":
            child = server.store.refresh_tokens.get(record.child or "")
            if server.profile.rotation_grace and child is not None and not child.used:
                return record  # Shopify: the old token works until its replacement is first used
            server.hub.revoke_family(server.vendor, record.family_id, "refresh_token_reuse")
            server.hub.event(server.vendor, "refresh_token_reuse")
            raise InvalidGrantError("Refresh token reuse detected: the grant is revoked.")
        return record

    def authenticate_user(self, refresh_token: RefreshToken) -> SandboxUser:
        return USER

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        server = self.server
        new_child = server.pending_child
        # A grace-period retry (Shopify) supersedes the earlier, never-used replacement.
        superseded = server.store.refresh_tokens.get(refresh_token.child or "")
        if superseded is not None and superseded.token != new_child:
            superseded.status = "revoked"
        refresh_token.used = True
        refresh_token.status = "rotated"
        refresh_token.child = new_child
        if server.profile.refresh_revokes_previous_access and refresh_token.access_token:
            server.state.tokens.revoke(refresh_token.access_token, server.vendor)


class DeviceGrant(_VendorAuthMethods, DeviceCodeGrant):
    server: VendorAuthorizationServer

    def validate_token_request(self) -> None:
        if not self.server.hub.device_enabled(self.server.vendor):
            raise UnsupportedGrantTypeError(self.GRANT_TYPE)
        super().validate_token_request()

    def query_device_credential(self, device_code: str) -> DeviceCredential | None:
        return self.server.store.devices.get(device_code)

    def validate_device_credential(self, credential: DeviceCredential) -> SandboxUser:
        now = self.server.now()
        credential.previous_poll = credential.polls[-1] if credential.polls else None
        credential.polls.append(now)
        if credential.status == "consumed":
            raise InvalidGrantError("The device code was already used.")
        return super().validate_device_credential(credential)

    def query_user_grant(self, user_code: str) -> tuple[SandboxUser, bool] | None:
        credential = self.server.store.device_by_user_code(user_code)
        if credential is None or credential.status == "pending":
            return None
        return USER, credential.status == "approved"

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        """Polled sooner than `interval` after the previous poll: slow_down, and the interval grows
        by 5 s for this and all later polls (RFC 8628 §3.5)."""
        last = credential.previous_poll
        if last is not None and credential.polls[-1] - last < credential.interval:
            credential.interval += 5
            return True
        return False


class Revocation(RevocationEndpoint):
    server: VendorAuthorizationServer

    @property
    def CLIENT_AUTH_METHODS(self) -> list[str]:  # noqa: N802 (authlib's attribute name)
        return [*self.server.profile.revocation_auth_methods, "none"]

    def check_params(self, request: SandboxOAuth2Request, client: Any) -> None:
        # RFC 7009 §2.2: "An invalid token type hint value is ignored"; authlib would refuse it.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        server = self.server
        refresh = server.store.refresh_tokens.get(token_string)
        record = server.state.tokens.get(server.vendor, token_string)
        access = None
        if record is not None and record.kind == "oauth" and record.subject.get("client_id"):
            access = AccessTokenRef(
                token_string, record.subject["client_id"], record.subject.get("family_id")
            )
        if token_type_hint == "access_token":
            return access or refresh
        return refresh or access

    def revoke_token(self, token: Any, request: SandboxOAuth2Request) -> None:
        server = self.server
        server.hub.event(server.vendor, "revocation")
        if isinstance(token, RefreshToken):
            # Revoking a refresh token also invalidates the access tokens of its grant (RFC 7009 §2.1).
            server.hub.revoke_family(server.vendor, token.family_id, "revoked")
        else:
            server.state.tokens.revoke(token.token, server.vendor)


class DeviceAuthorization(DeviceAuthorizationEndpoint):
    server: VendorAuthorizationServer

    @property
    def CLIENT_AUTH_METHODS(self) -> list[str]:  # noqa: N802 (authlib's attribute name)
        return [*self.server.profile.token_auth_methods, "none"]

    @property
    def EXPIRES_IN(self) -> int:  # noqa: N802
        return int(self.server.state.config.device_code_ttl)

    @property
    def INTERVAL(self) -> int:  # noqa: N802
        return int(self.server.state.config.device_interval)

    def create_endpoint_response(self, request: SandboxOAuth2Request) -> Any:
        self._origin = request.origin
        return super().create_endpoint_response(request)

    def get_verification_uri(self) -> str:
        return self._origin + self.server.prefix + self.server.profile.device_verification_path

    def save_device_credential(self, client_id: str, scope: str | None, data: dict[str, Any]) -> None:
        if not scope:
            raise InvalidScopeError("A scope is required.")
        store = self.server.store
        store.devices[data["device_code"]] = DeviceCredential(
            device_code=data["device_code"],
            user_code=data["user_code"],
            client_id=client_id,
            scope=scope,
            expires_at=self.server.now() + data["expires_in"],
            interval=int(data["interval"]),
            clock=self.server.now,
        )


class SandboxIssuerParameter(IssuerParameter):
    """RFC 9207 `iss` on every authorization response (success and error redirects), then what the
    vendor adds to its callback (`Vendor.oauth_redirect`: Shopify's `shop`, `host`, `timestamp`, `hmac`)."""

    def add_issuer_parameter(self, authorization_server: Any, response: Any) -> None:
        self._server = authorization_server
        super().add_issuer_parameter(authorization_server, response)
        if response.location:
            vendor = authorization_server.hub.vendor(authorization_server.vendor)
            response.location = vendor.oauth_redirect(authorization_server, response.location)

    def get_issuer(self) -> str | None:
        return self._server.current_issuer
