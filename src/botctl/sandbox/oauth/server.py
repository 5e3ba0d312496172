"""authlib's authorization-server core, wired to Starlette (authlib ships server integrations for
Flask and Django only; its `starlette_client` is a client).

As in authlib's Flask/Django integrations, `VendorAuthorizationServer` subclasses
`authlib.oauth2.AuthorizationServer` and implements `create_oauth2_request` / `handle_response`.
Starlette reads bodies asynchronously and authlib is synchronous, so the route handler reads the
body first and hands authlib a ready `SandboxOAuth2Request`; authlib's calls then run on the event
loop without awaiting (in-memory, fast), which also makes each one atomic.

authlib pieces used: `AuthorizationCodeGrant` + `CodeChallenge` (RFC 7636, narrowed to S256),
`RefreshTokenGrant` (`INCLUDE_NEW_REFRESH_TOKEN`, rotation and reuse detection added here),
`DeviceCodeGrant` + `DeviceAuthorizationEndpoint` (RFC 8628), `RevocationEndpoint` (RFC 7009),
`IssuerParameter` (RFC 9207), `BearerTokenGenerator` (RFC 6750), `ClientAuthentication`
(`client_secret_basic`, `client_secret_post`, `none`), and `AuthorizationServerMetadata`
(RFC 8414) in the tests.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oauth2.rfc9207 import IssuerParameter

from botctl.sandbox import seed

from .models import (
    AccessTokenRef,
    AuthorizationCode,
    DeviceCredential,
    Family,
    OAuthStore,
    RefreshToken,
)
from .profiles import (
    DEVICE_GRANT,
    USER,
    Profile,
    SandboxUser,
    oauth_vendors,
)

if TYPE_CHECKING:
    from botctl.sandbox.state import SandboxState
    from botctl.sandbox.vendors.base import Vendor


# --- request / response adapters -------------------------------------------------------------------


class SandboxPayload(OAuth2Payload):
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist

    def set_default(self, key: str, value: str) -> None:
        if key not in self._data:
            self._data[key] = value
            self._datalist[key].append(value)


class SandboxOAuth2Request(OAuth2Request):
    """An OAuth2Request built from an already-read Starlette request.

    `payload` is the form body for POST and the query for GET, like the real endpoints (HubSpot:
    "params in the body, never in the query").
    """

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        *,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        origin: str,
    ) -> None:
        try:
            super().__init__(method, uri, headers=headers)
        except InsecureTransportError:
            # authlib accepts plain http on loopback only; the sandbox is plain HTTP by design
            # wherever it is served (`botctl sandbox serve --host ...`).
            super().__init__(method, "https://sandbox.invalid/", headers=headers)
            self.uri = uri
        self.origin = origin
        self._args = {k: v for k, v in reversed(query)}
        self._form = {k: v for k, v in reversed(form)}
        self.payload = SandboxPayload(form if method == "POST" else query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class OAuthResponse:
    """What `handle_response` returns: status, body and headers, with the `location` attribute
    authlib's RFC 9207 extension rewrites. Turned into a Starlette response by the route."""

    def __init__(self, status: int, body: Any, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]


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
        body = secrets.token_hex(p.access_token_hex_bytes) if p.access_token_hex_bytes else secrets.token_urlsafe(48)
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
            refresh_ttl = _clamped(data.get("refresh_token_expires_in"), refresh_low, refresh_high, refresh_ttl)
        expiring = True
        if p.offline_unless_expiring and request.authorization_code is not None and data.get("expiring") != "1":
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
        self.profiles = {v.name: v.oauth_profile for v in oauth_vendors(state.vendors.values()) if v.oauth_profile}
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
