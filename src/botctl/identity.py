"""Visitor identity: the business's site signs a short-lived JWT for its logged-in visitor.

Per workspace, botctl holds HS256 secrets (generated here, shown once, stored encrypted) or the
site's public keys (RS256 / ES256 / EdDSA, PEM or a pinned JWKS URL). `verify` is the only way a
`Visitor` comes to exist: `{sub, email, name}` are taken from verified claims and nowhere else.

Rules (SECURITY.md §2, RFC 8725): size cap and compact-form check before any decoding; `crit`,
`jku`, `x5u`, `x5c` and embedded `jwk` refused; `kid` selects among this workspace's keys only; each
key has exactly one algorithm; required `sub`, `exp`, `iat`, `aud` (= workspace name, exact),
`iss` when configured; lifetime `exp - iat` capped per workspace; leeway 60 s at most.
Any failure is one error (`invalid_identity`) with an internal reason for the audit record; the
token itself is never logged, audited or echoed.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.connectors.base import Visitor
from botctl.errors import Conflict, NotFound, UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.app import App
    from botctl.workspaces import Workspace

MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_S = 60
ALGS = ("HS256", "RS256", "ES256", "EdDSA")
FORBIDDEN_HEADERS = frozenset({"crit", "jku", "x5u", "x5c", "jwk"})
_COMPACT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
DEFAULT_OVERLAP_S = 24 * 3600
_KEY_OWNER = "identity:{kid}"


class IdentityError(Exception):
    """The token was refused. `reason` is for the audit record; visitors only ever see invalid_identity."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IdentityKey:
    kid: str
    alg: str
    kind: str
    public_key: str | None
    jwks_url: str | None
    created_at: str
    expires_at: str | None

    def active(self, now_iso: str) -> bool:
        return self.expires_at is None or self.expires_at > now_iso

    def as_dict(self) -> dict[str, Any]:
        return {"kid": self.kid, "alg": self.alg, "kind": self.kind, "jwks_url": self.jwks_url,
                "created_at": self.created_at, "expires_at": self.expires_at}


def iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_duration(value: Any, flag: str | None = None) -> int:
    """Seconds from `90s`, `10m`, `1h`, `1d` or a plain number (CLI flags and `botctl apply` files)."""
    what = f"{flag} {value!r}" if flag else repr(value)
    if isinstance(value, bool):
        raise UsageError(f"{what} is not a duration.", hint="Use e.g. 90s, 10m, 1h, 1d.")
    if isinstance(value, int):
        return value
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = str(value).strip().lower()
    try:
        return int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except (ValueError, KeyError):
        raise UsageError(f"{what} is not a duration.", hint="Use e.g. 90s, 10m, 1h, 1d.") from None


def list_keys(conn: sqlite3.Connection, ws: Workspace) -> list[IdentityKey]:
    rows = conn.execute("SELECT kid, alg, kind, public_key, jwks_url, created_at, expires_at FROM identity_keys "
                        "WHERE workspace_id = ? ORDER BY created_at", (ws.id,)).fetchall()
    return [IdentityKey(*r) for r in rows]


def _new_kid() -> str:
    return "k" + time.strftime("%Y%m%d") + "-" + os.urandom(3).hex()


def rotate(app: App, ws: Workspace, *, overlap_s: int = DEFAULT_OVERLAP_S, expire_previous: bool = False
           ) -> tuple[IdentityKey, Secret]:
    """New HS256 secret (256 bits, URL-safe text used as-is by the site's JWT library).

    Previous secrets stay valid for `overlap_s` (or end now with `expire_previous`).
    """
    import secrets as pysecrets

    secret = Secret(pysecrets.token_urlsafe(32))
    kid = _new_kid()
    now = time.time()
    vault = app.vault
    with store.transaction(vault.conn):
        ends = iso(now) if expire_previous else iso(now + overlap_s)
        previous = [k for k in list_keys(vault.conn, ws) if k.kind == "secret" and k.active(iso(now))]
        for k in previous:
            if k.expires_at is None or k.expires_at > ends:
                vault.conn.execute("UPDATE identity_keys SET expires_at = ? WHERE workspace_id = ? AND kid = ?",
                                   (ends, ws.id, k.kid))
        vault.conn.execute("INSERT INTO identity_keys (workspace_id, kid, alg, kind, created_at) "
                           "VALUES (?, ?, 'HS256', 'secret', ?)", (ws.id, kid, iso(now)))
        vault.put_secret(ws.ref, _KEY_OWNER.format(kid=kid), "hs256_secret", secret)
        app.audit("identity.key_rotated", workspace=ws.name,
                  detail={"kid": kid, "alg": "HS256", "previous": [k.kid for k in previous],
                          "previous_valid_until": ends if previous else None})
    key = next(k for k in list_keys(vault.conn, ws) if k.kid == kid)
    return key, secret


def add_public_key(app: App, ws: Workspace, *, alg: str, pem: str | None = None, jwks_url: str | None = None,
                   kid: str | None = None) -> IdentityKey:
    if alg not in ("RS256", "ES256", "EdDSA"):
        raise UsageError(f"unsupported algorithm {alg!r} for a public key.", hint="Use RS256, ES256 or EdDSA.")
    if (pem is None) == (jwks_url is None):
        raise UsageError("give exactly one of --public-key FILE or --jwks-url URL.")
    if pem is not None:
        check_public_key(pem, alg)
    if jwks_url is not None and not jwks_url.startswith("https://") and not is_loopback_url(jwks_url):
        raise UsageError("--jwks-url must be an https:// URL.", hint="JWKS fetched over plain HTTP could be replaced in transit.")
    kid = kid or _new_kid()
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", kid):
        raise UsageError(f"invalid --kid {kid!r}.", hint="Use letters, digits, '.', '_', ':' or '-' (at most 128).")
    vault = app.vault
    with store.transaction(vault.conn):
        if any(k.kid == kid for k in list_keys(vault.conn, ws)):
            raise Conflict(f"workspace {ws.name!r} already has a key with kid {kid!r}.")
        vault.conn.execute("INSERT INTO identity_keys (workspace_id, kid, alg, kind, public_key, jwks_url, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (ws.id, kid, alg, "public_key" if pem else "jwks_url", pem, jwks_url, iso(time.time())))
        app.audit("identity.key_added", workspace=ws.name,
                  detail={"kid": kid, "alg": alg, "kind": "public_key" if pem else "jwks_url", "jwks_url": jwks_url})
    return next(k for k in list_keys(vault.conn, ws) if k.kid == kid)


def remove_key(app: App, ws: Workspace, kid: str) -> None:
    vault = app.vault
    with store.transaction(vault.conn):
        if not any(k.kid == kid for k in list_keys(vault.conn, ws)):
            raise NotFound(f"workspace {ws.name!r} has no identity key {kid!r}.",
                           hint=f"See `botctl identity list -w {ws.name}`.")
        vault.conn.execute("DELETE FROM identity_keys WHERE workspace_id = ? AND kid = ?", (ws.id, kid))
        vault.delete_secrets(ws.ref, _KEY_OWNER.format(kid=kid))
        app.audit("identity.key_removed", workspace=ws.name, detail={"kid": kid})


def is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname in ("127.0.0.1", "::1", "localhost")


def check_public_key(pem: str, alg: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise UsageError("the file is not a PEM public key.", hint="Export the public half, e.g. "
                         "openssl pkey -in private.pem -pubout") from None
    want = {"RS256": rsa.RSAPublicKey, "ES256": ec.EllipticCurvePublicKey, "EdDSA": ed25519.Ed25519PublicKey}[alg]
    if not isinstance(key, want):
        raise UsageError(f"that public key does not fit {alg}.")
    if alg == "RS256" and key.key_size < 2048:  # type: ignore[union-attr]
        raise UsageError("RSA keys must be at least 2048 bits.")
    if alg == "ES256" and key.curve.name != "secp256r1":  # type: ignore[union-attr]
        raise UsageError("ES256 needs a P-256 key.")


def set_settings(app: App, ws: Workspace, *, issuer: str | None = None, max_lifetime: int | None = None,
                 clear_issuer: bool = False) -> None:
    changes: dict[str, Any] = {}
    if clear_issuer:
        changes["identity_issuer"] = None
    elif issuer is not None:
        changes["identity_issuer"] = issuer
    if max_lifetime is not None:
        if not 60 <= max_lifetime <= 24 * 3600:
            raise UsageError("--max-lifetime must be between 1m and 24h.")
        changes["identity_max_lifetime"] = max_lifetime
    if not changes:
        raise UsageError("nothing to change.", hint="Give --issuer, --no-issuer or --max-lifetime.")
    with store.transaction(app.vault.conn):
        sets = ", ".join(f"{k} = ?" for k in changes)
        app.vault.conn.execute(f"UPDATE workspaces SET {sets}, updated_at = ? WHERE id = ?",
                               (*changes.values(), store.now_iso(), ws.id))
        app.audit("workspace.identity_changed", workspace=ws.name, detail=changes)


def settings(conn: sqlite3.Connection, ws: Workspace) -> tuple[str | None, int]:
    row = conn.execute("SELECT identity_issuer, identity_max_lifetime FROM workspaces WHERE id = ?", (ws.id,)).fetchone()
    return row[0], int(row[1])


# -- verification ------------------------------------------------------------------------------------


class Verifier:
    """Verifies identity tokens for one workspace. Build one per request, or cache and `reload()`."""

    def __init__(self, app: App, ws: Workspace, *, jwks_fetch_timeout: float = 5.0) -> None:
        self.app = app
        self.ws = ws
        self.issuer, self.max_lifetime = settings(app.vault.conn, ws)
        self.keys = list_keys(app.vault.conn, ws)
        self._secrets: dict[str, bytes] = {}
        self._jwks_timeout = jwks_fetch_timeout

    def _material(self, key: IdentityKey, kid_in_token: str | None) -> Any:
        if key.kind == "secret":
            if key.kid not in self._secrets:
                s = self.app.vault.get_secret(self.ws.ref, _KEY_OWNER.format(kid=key.kid), "hs256_secret")
                if s is None:
                    raise IdentityError("key_missing")
                self._secrets[key.kid] = s.reveal().encode()
            return self._secrets[key.kid]
        if key.kind == "public_key":
            return key.public_key
        return _jwks_key(key.jwks_url or "", kid_in_token, key.alg, self._jwks_timeout)

    def verify(self, token: str) -> Visitor:
        import jwt

        if not isinstance(token, str) or len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
            raise IdentityError("token_too_large")
        if not _COMPACT.match(token):
            raise IdentityError("malformed")
        header = _header(token)
        bad = FORBIDDEN_HEADERS & set(header)
        if bad:
            raise IdentityError(f"forbidden_header:{sorted(bad)[0]}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGS:
            raise IdentityError("alg_not_allowed")
        now_ts = time.time()
        live = [k for k in self.keys if k.active(iso(now_ts))]
        kid = header.get("kid")
        if kid is None:
            if len(live) != 1:
                raise IdentityError("kid_required")
            key = live[0]
        else:
            if not isinstance(kid, str):
                raise IdentityError("kid_not_string")
            matches = [k for k in live if k.kid == kid or (k.kind == "jwks_url")]
            exact = [k for k in matches if k.kid == kid]
            key = exact[0] if exact else (matches[0] if matches else None)
            if key is None:
                raise IdentityError("unknown_kid")
        if alg != key.alg:  # each key is used with exactly one algorithm (RFC 8725 §3.1)
            raise IdentityError("alg_mismatch")
        material = self._material(key, kid)
        required = ["sub", "exp", "iat", "aud"] + (["iss"] if self.issuer else [])
        try:
            claims = jwt.decode(
                token, material, algorithms=[key.alg], audience=self.ws.name, issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": required, "strict_aud": True, "enforce_minimum_key_length": True,
                         "verify_iat": True, "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError:
            raise IdentityError("expired") from None
        except jwt.ImmatureSignatureError:
            raise IdentityError("not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise IdentityError("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise IdentityError("wrong_issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise IdentityError(f"missing_claim:{exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise IdentityError("bad_signature") from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise IdentityError("invalid_token") from None
        return self._visitor(claims, now_ts)

    def _visitor(self, claims: dict[str, Any], now_ts: float) -> Visitor:
        exp, iat = claims.get("exp"), claims.get("iat")
        for v in (exp, iat):
            if isinstance(v, bool) or not isinstance(v, int | float) or v != v or abs(v) > 1e12:
                raise IdentityError("bad_time_claim")
        if exp - iat > self.max_lifetime:
            raise IdentityError("lifetime_too_long")
        if iat > now_ts + LEEWAY_S:
            raise IdentityError("issued_in_future")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 256:
            raise IdentityError("bad_sub")
        email = claims.get("email")
        if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
            raise IdentityError("bad_email")
        name = claims.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise IdentityError("bad_name")
        return Visitor(sub=sub, email=email.lower() if email else None, name=name)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, parsed here (not by PyJWT) so each refusal gets its precise reason."""
    import base64
    import binascii
    import json

    seg = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: `[[[…` nested past the C parser's limit
        raise IdentityError("malformed_header") from None
    if not isinstance(header, dict):
        raise IdentityError("malformed_header")
    return header


_JWKS_CLIENTS: dict[str, Any] = {}


def _jwks_key(url: str, kid: str | None, alg: str, timeout: float) -> Any:
    """Key from a pinned JWKS URL (never from the token's `jku`); cached for 5 minutes by PyJWT."""
    import jwt

    client = _JWKS_CLIENTS.get(url)
    if client is None:
        client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=timeout)
        _JWKS_CLIENTS[url] = client
    if kid is None:
        raise IdentityError("kid_required")
    try:
        jwk = client.get_signing_key(kid)
    except jwt.PyJWKClientConnectionError:
        raise IdentityError("jwks_unreachable") from None
    except jwt.PyJWKClientError:
        raise IdentityError("unknown_kid") from None
    if jwk.algorithm_name not in (alg, None) and getattr(jwk, "algorithm_name", alg) != alg:
        raise IdentityError("alg_mismatch")
    return jwk.key


def mint(app: App, ws: Workspace, *, sub: str, email: str | None, name: str | None, ttl_s: int,
         kid: str | None = None) -> str:
    """A token signed with the workspace's newest HS256 secret, as a site backend would (for testing)."""
    import jwt

    now = int(time.time())
    secrets_ = [k for k in list_keys(app.vault.conn, ws) if k.kind == "secret" and k.active(iso(now))]
    if kid:
        secrets_ = [k for k in secrets_ if k.kid == kid]
    if not secrets_:
        raise UsageError(f"workspace {ws.name!r} has no HS256 secret to sign with.",
                         hint=f"Create one: botctl identity rotate -w {ws.name}")
    key = secrets_[-1]
    secret = app.vault.get_secret(ws.ref, _KEY_OWNER.format(kid=key.kid), "hs256_secret")
    assert secret is not None
    issuer, max_lifetime = settings(app.vault.conn, ws)
    if ttl_s > max_lifetime:
        raise UsageError(f"--ttl is longer than this workspace accepts ({max_lifetime}s).")
    claims: dict[str, Any] = {"sub": sub, "aud": ws.name, "iat": now, "exp": now + ttl_s}
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret.reveal(), algorithm="HS256", headers={"kid": key.kid})
