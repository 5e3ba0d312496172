"""Every credential the sandbox accepts: static keys and tokens, and tokens issued at run time.

Vendor endpoints only ever ask the registry; an OAuth authorization server (issue #4) plugs in by
calling `issue_access_token` and `revoke`, and its tokens are then accepted like the static ones.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TokenStatus = Literal["ok", "unknown", "expired", "revoked"]


@dataclass
class AccessToken:
    token: str
    vendor: str
    scopes: frozenset[str]
    # "static" (seeded credential: PAT, API key, private-app token...) or "oauth" (issued at run time).
    kind: str = "static"
    tenant: str | None = None
    expires_at: float | None = None
    revoked: bool = False
    # Vendor-specific extras: the Zendesk agent email an API token belongs to, a WooCommerce secret...
    subject: dict[str, Any] = field(default_factory=dict)
    issued_at: float = 0.0

    def expires_in(self, now: float) -> int | None:
        return None if self.expires_at is None else int(self.expires_at - now)


@dataclass(frozen=True)
class TokenCheck:
    status: TokenStatus
    token: AccessToken | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class TokenRegistry:
    """Thread-safe: test code may issue or revoke tokens from outside the server's event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.time, default_ttl: int | None = None) -> None:
        self._clock = clock
        self.default_ttl = default_ttl
        self._lock = threading.RLock()
        self._tokens: dict[tuple[str, str], AccessToken] = {}

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def add(self, record: AccessToken) -> AccessToken:
        with self._lock:
            if not record.issued_at:
                record.issued_at = self._clock()
            self._tokens[(record.vendor, record.token)] = record
        return record

    def add_static(
        self,
        vendor: str,
        token: str,
        scopes: Iterable[str],
        *,
        tenant: str | None = None,
        subject: Mapping[str, Any] | None = None,
    ) -> AccessToken:
        return self.add(
            AccessToken(
                token=token,
                vendor=vendor,
                scopes=frozenset(scopes),
                tenant=tenant,
                subject=dict(subject or {}),
            )
        )

    def issue_access_token(
        self,
        vendor: str,
        scopes: Iterable[str],
        ttl: int | float | None = None,
        *,
        tenant: str | None = None,
        subject: Mapping[str, Any] | None = None,
        prefix: str = "",
        token: str | None = None,
    ) -> AccessToken:
        """Issue a bearer token for `vendor`. `ttl=None` uses the app's `token_ttl` (None: never expires).

        A ttl of 0 (or less) gives a token that is already expired, for testing the vendor's
        "expired token" answer without sleeping.
        """
        now = self._clock()
        lifetime = self.default_ttl if ttl is None else ttl
        record = AccessToken(
            token=token or prefix + secrets.token_urlsafe(32),
            vendor=vendor,
            scopes=frozenset(scopes),
            kind="oauth",
            tenant=tenant,
            expires_at=None if lifetime is None else now + lifetime,
            subject=dict(subject or {}),
            issued_at=now,
        )
        return self.add(record)

    def revoke(self, token: str, vendor: str | None = None) -> bool:
        with self._lock:
            found = False
            for (v, t), record in self._tokens.items():
                if t == token and (vendor is None or v == vendor):
                    record.revoked = True
                    found = True
            return found

    def expire(self, vendor: str | None = None, token: str | None = None) -> int:
        """Make issued (OAuth) access tokens expired now, as if their lifetime had run out.
        Filters by vendor and/or token; returns how many were expired."""
        now = self._clock()
        count = 0
        with self._lock:
            for (v, t), record in self._tokens.items():
                if record.kind == "static" or (vendor is not None and v != vendor):
                    continue
                if token is not None and t != token:
                    continue
                if record.expires_at is None or record.expires_at > now:
                    record.expires_at = now - 1
                    count += 1
        return count

    def find(self, vendor: str, predicate: Callable[[AccessToken], bool]) -> list[AccessToken]:
        with self._lock:
            return [r for (v, _), r in self._tokens.items() if v == vendor and predicate(r)]

    def get(self, vendor: str, token: str) -> AccessToken | None:
        with self._lock:
            return self._tokens.get((vendor, token))

    def check(self, vendor: str, token: str | None) -> TokenCheck:
        if not token:
            return TokenCheck("unknown")
        record = self.get(vendor, token)
        if record is None:
            return TokenCheck("unknown")
        if record.revoked:
            return TokenCheck("revoked", record)
        if record.expires_at is not None and self._clock() >= record.expires_at:
            return TokenCheck("expired", record)
        return TokenCheck("ok", record)

    def issued(self) -> list[AccessToken]:
        with self._lock:
            return [r for r in self._tokens.values() if r.kind != "static"]
