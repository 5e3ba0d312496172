"""What one vendor's authorization server stores: clients, codes, grant families, refresh tokens,
device codes, pending consents. Plain objects implementing authlib's model mixins."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc8628 import DeviceCredentialMixin

from .profiles import DEVICE_GRANT, REDIRECT_URIS, ClientSpec, Profile

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})


def redirect_matches(registered: str, requested: str) -> bool:
    """Exact string matching, except the port of loopback IP redirect URIs (RFC 8252 §7.3,
    RFC 9700 §2.1). `localhost` is not a loopback IP literal and gets no port leeway."""
    if registered == requested:
        return True
    try:
        reg, req = urlsplit(registered), urlsplit(requested)
        req_port = req.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if reg.scheme != "http" or req.scheme != "http" or reg.hostname not in LOOPBACK_HOSTS:
        return False
    if req_port is None and req.netloc != reg.netloc:
        return False
    # Compare everything but the port, character for character.
    host = f"[{reg.hostname}]" if ":" in (reg.hostname or "") else reg.hostname
    req_host = req.netloc.rsplit(":", 1)[0] if req_port is not None else req.netloc
    return (
        req_host == host
        and "@" not in req.netloc
        and req.path == reg.path
        and req.query == reg.query
        and req.fragment == reg.fragment == ""
        and "#" not in requested
    )


@dataclass
class Client(ClientMixin):
    spec: ClientSpec
    profile: Profile
    redirect_uris: tuple[str, ...] = REDIRECT_URIS

    @property
    def client_id(self) -> str:
        return self.spec.client_id

    @property
    def is_public(self) -> bool:
        return self.spec.client_secret is None

    def get_client_id(self) -> str:
        return self.spec.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # several are registered: the request must name one

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return None  # scope is required by all four vendors (a missing one is invalid_scope)
        allowed = set(self.profile.scopes)
        granted = [s for s in scope_to_list(scope) if s in allowed]
        return " ".join(dict.fromkeys(granted)) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(redirect_matches(r, redirect_uri) for r in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        secret = self.spec.client_secret
        return secret is not None and hmac.compare_digest(secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        if endpoint == "revocation":
            return method in self.profile.revocation_auth_methods
        return method in self.profile.token_auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token", DEVICE_GRANT)


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    used: bool = False
    family_id: str | None = None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Family:
    """One grant: everything issued from one authorization code or device approval, through every
    refresh. Revoking the family revokes all of it (code replay, refresh-token reuse, RFC 7009)."""

    id: str
    client_id: str
    scope: str
    source: str  # "authorization_code" | "device_code"
    created_at: float
    access_tokens: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)
    revoked: bool = False
    revoked_reason: str | None = None


RefreshStatus = Literal["active", "rotated", "revoked"]


@dataclass
class RefreshToken(TokenMixin):
    token: str
    family_id: str
    client_id: str
    scope: str
    issued_at: float
    expires_at: float | None
    access_token: str | None = None  # the access token issued alongside it
    status: RefreshStatus = "active"
    child: str | None = None  # the refresh token that replaced it
    used: bool = False  # exchanged at least once
    clock: Callable[[], float] | None = None

    def check_client(self, client: ClientMixin) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0 if self.expires_at is None else int(self.expires_at - self.issued_at)

    def is_expired(self) -> bool:
        now = self.clock() if self.clock else 0.0
        return self.expires_at is not None and now >= self.expires_at

    def is_revoked(self) -> bool:
        return self.status == "revoked"


@dataclass
class AccessTokenRef(TokenMixin):
    """An access token from the registry, as the revocation endpoint sees it."""

    token: str
    client_id: str | None
    family_id: str | None

    def check_client(self, client: ClientMixin) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return ""

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


DeviceStatus = Literal["pending", "approved", "denied", "consumed"]


@dataclass
class DeviceCredential(DeviceCredentialMixin):
    device_code: str
    user_code: str
    client_id: str
    scope: str | None
    expires_at: float
    interval: int
    clock: Callable[[], float]
    status: DeviceStatus = "pending"
    polls: list[float] = field(default_factory=list)
    previous_poll: float | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str | None:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return self.clock() >= self.expires_at


@dataclass
class PendingConsent:
    """An authorization request shown on the consent page, waiting for Approve or Deny."""

    id: str
    uri: str
    query: list[tuple[str, str]]
    expires_at: float


def normalize_user_code(code: str) -> str:
    """RFC 8628 §6.1: compare user codes case-insensitively and without punctuation."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


class OAuthStore:
    """One vendor's authorization-server data (rebuilt on sandbox reset)."""

    CODE_TTL = 600  # "the code expires after 10 min" (Calendly); RFC 6749 recommends at most 10 minutes
    CONSENT_TTL = 600

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.clients = {spec.client_id: Client(spec, profile) for spec in profile.clients()}
        self.codes: dict[str, AuthorizationCode] = {}
        self.families: dict[str, Family] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.devices: dict[str, DeviceCredential] = {}
        self.consents: dict[str, PendingConsent] = {}
        self.next_token_id = 900001  # Zendesk shows OAuth tokens by numeric id

    def new_family(self, client_id: str, scope: str, source: str, now: float) -> Family:
        family = Family(secrets.token_hex(8), client_id, scope, source, now)
        self.families[family.id] = family
        return family

    def device_by_user_code(self, user_code: str) -> DeviceCredential | None:
        wanted = normalize_user_code(user_code)
        return next((d for d in self.devices.values() if normalize_user_code(d.user_code) == wanted), None)
