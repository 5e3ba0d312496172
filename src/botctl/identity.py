"""Visitor identity: the business's site signs a short-lived JWT for its logged-in visitor.

Per workspace, botctl holds HS256 secrets (generated here, shown once, stored encrypted) or the
site's public keys (RS256 / ES256 / EdDSA, PEM or a pinned JWKS URL). `verify` is the only way a
`Visitor` comes to exist: `{sub, email, name}` are taken from verified claims and nowhere else.

Rules (SECURITY.md §2, RFC 8725): size cap and compact-form check before any decoding; `crit`,
`jku`, `x5u`, `x5c` and embedded `jwk` refused; `kid` selects among this workspace's keys only; each
key has exactly one algorithm; required `sub`, `exp`, `iat`, `aud` (= workspace name, exact),
`iss` (exact) when configured; lifetime `exp - iat` capped per workspace; leeway 60 s at most; a
`typ` other than JWT (e.g. `at+jwt`) and `cty` refused; `email` ASCII (unless the workspace allows
Unicode addresses), without controls, bidi or zero-width characters, and never with
`email_verified` other than true (required per workspace); `jti` required and accepted once per
workspace when the workspace turns the replay cache on.
JWKS key sets are fetched on a background thread (`JwksCache`), never on the caller's, and expire.
Any failure is one error (`invalid_identity`) with an internal reason for the audit record; the
token itself is never logged, audited or echoed.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.connectors.base import Visitor
from botctl.durations import parse_duration  # noqa: F401 - re-exported: the one duration parser
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


# -- per-workspace rules -------------------------------------------------------------------------------
#
# `identity_issuer` and `identity_max_lifetime` are columns of `workspaces` (schema 4). The newer rules
# live as one JSON object in the vault's `meta` table under `identity_rules:<workspace id>` until the
# workspaces table has a column for them; `workspaces.delete` removes that row with the workspace.

_RULES_KEY = "identity_rules:{ws_id}"
RULE_DEFAULTS: dict[str, bool] = {"require_email_verified": False, "unicode_email": False, "jti_replay": False}


@dataclass(frozen=True)
class Rules:
    issuer: str | None
    max_lifetime: int
    require_email_verified: bool = False
    unicode_email: bool = False
    jti_replay: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "max_lifetime_s": self.max_lifetime,
                "require_email_verified": self.require_email_verified, "unicode_email": self.unicode_email,
                "jti_replay": self.jti_replay}


def rules_key(ws_id: str) -> str:
    return _RULES_KEY.format(ws_id=ws_id)


def _stored_rules(conn: sqlite3.Connection, ws: Workspace) -> dict[str, bool]:
    import json

    row = conn.execute("SELECT value FROM meta WHERE key = ?", (rules_key(ws.id),)).fetchone()
    try:
        stored = json.loads(row[0]) if row else {}
    except ValueError:
        stored = {}
    return {k: stored.get(k) is True for k in RULE_DEFAULTS}


def rules(conn: sqlite3.Connection, ws: Workspace) -> Rules:
    issuer, max_lifetime = settings(conn, ws)
    return Rules(issuer, max_lifetime, **_stored_rules(conn, ws))


def check_issuer(issuer: str) -> str:
    if not issuer or issuer != issuer.strip() or len(issuer) > 512 or not issuer.isprintable():
        raise UsageError(f"invalid --issuer {issuer!r}.",
                         hint="Give the exact iss your site puts in its tokens (e.g. https://shop.example.com); "
                              "--no-issuer stops requiring one.")
    return issuer


def set_settings(app: App, ws: Workspace, *, issuer: str | None = None, max_lifetime: int | None = None,
                 clear_issuer: bool = False, require_email_verified: bool | None = None,
                 unicode_email: bool | None = None, jti_replay: bool | None = None) -> Rules:
    """Change a workspace's token rules (one transaction, one `workspace.identity_changed` record)."""
    import json

    changes: dict[str, Any] = {}
    if clear_issuer:
        changes["identity_issuer"] = None
    elif issuer is not None:
        changes["identity_issuer"] = check_issuer(issuer)
    if max_lifetime is not None:
        if not 60 <= max_lifetime <= 24 * 3600:
            raise UsageError("--max-lifetime must be between 1m and 24h.")
        changes["identity_max_lifetime"] = max_lifetime
    flags = {k: v for k, v in (("require_email_verified", require_email_verified),
                               ("unicode_email", unicode_email), ("jti_replay", jti_replay)) if v is not None}
    if not changes and not flags:
        raise UsageError("nothing to change.", hint="Give --issuer, --no-issuer or --max-lifetime.")
    conn = app.vault.conn
    with store.transaction(conn):
        if changes:
            sets = ", ".join(f"{k} = ?" for k in changes)
            conn.execute(f"UPDATE workspaces SET {sets}, updated_at = ? WHERE id = ?",
                         (*changes.values(), store.now_iso(), ws.id))
        if flags:
            merged = {**_stored_rules(conn, ws), **flags}
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                         "excluded.value", (rules_key(ws.id), json.dumps(merged, sort_keys=True)))
            if not changes:
                conn.execute("UPDATE workspaces SET updated_at = ? WHERE id = ?", (store.now_iso(), ws.id))
        app.audit("workspace.identity_changed", workspace=ws.name, detail={**changes, **flags})
    return rules(conn, ws)


def settings(conn: sqlite3.Connection, ws: Workspace) -> tuple[str | None, int]:
    row = conn.execute("SELECT identity_issuer, identity_max_lifetime FROM workspaces WHERE id = ?", (ws.id,)).fetchone()
    return row[0], int(row[1])


# -- emails ------------------------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# Unicode categories never allowed in an address: controls, format (bidi, zero-width), surrogates,
# private use, unassigned, and every kind of space or separator.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def operator_email(value: str) -> str:
    """An address an operator gave (`actions run --as-email`, the Python API) in the form visitors'
    addresses are compared (`email_key`); not one address is a usage error, shown escaped."""
    import json

    from botctl.errors import UsageError

    key = email_key(value)
    if key is None:
        raise UsageError(f"{json.dumps(value, ensure_ascii=True)} is not one email address.")
    return key


def email_key(value: object) -> str | None:
    """The form in which two addresses are compared, or None for something that is not one address.

    An all-ASCII address is lowercased whole (ASCII letters only). Otherwise only the domain's ASCII
    letters are lowercased and the rest is kept exactly: no Unicode case mapping, folding or
    normalisation, each of which makes distinct addresses equal (KELVIN SIGN -> k, long s -> s, ß -> ss).
    Controls, bidi and zero-width characters, spaces and a second `@` make it no address at all.
    """
    import unicodedata

    if not isinstance(value, str):
        return None
    v = value.strip(" \t\r\n")
    local, at, domain = v.rpartition("@")
    if not at or not local or not domain or "@" in local or len(local) > 64 or len(domain) > 255:
        return None
    if v.isascii():
        return v.lower() if all("!" <= ch <= "~" for ch in v) else None
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in v):
        return None
    return f"{local}@{domain.translate(_ASCII_LOWER)}"


def _visitor_email(claims: dict[str, Any], r: Rules) -> str | None:
    email = claims.get("email")
    verified = claims.get("email_verified", None)
    if email is None:
        return None
    key = email_key(email)
    if key is None or email != email.strip(" \t\r\n"):
        raise IdentityError("bad_email")
    if not email.isascii() and not r.unicode_email:
        raise IdentityError("email_not_ascii")
    # A site that says the address is unverified is never taken at its word for it; with the rule on,
    # it has to say that it is.
    if (verified is not None or r.require_email_verified) and verified is not True:
        raise IdentityError("email_not_verified")
    return key


# -- verification ------------------------------------------------------------------------------------

ALLOWED_TYP = frozenset({"jwt", "application/jwt"})


class Verifier:
    """Verifies identity tokens for one workspace. Build one per request (it reads the keys and rules).

    `verify` is synchronous; `averify` is for event loops (the provider): a key set that has to be
    fetched is awaited without blocking the loop. JWKS key sets come from `jwks` (default: the
    process-wide `jwks_cache()`), never fetched on the caller's thread.
    """

    def __init__(self, app: App, ws: Workspace, *, jwks: JwksCache | None = None,
                 replay: ReplayCache | None = None) -> None:
        self.app = app
        self.ws = ws
        self.rules = rules(app.vault.conn, ws)
        self.issuer, self.max_lifetime = self.rules.issuer, self.rules.max_lifetime
        self.keys = list_keys(app.vault.conn, ws)
        self._secrets: dict[str, bytes] = {}
        self._jwks = jwks
        self._replay = replay

    @property
    def jwks(self) -> JwksCache:
        if self._jwks is None:
            self._jwks = jwks_cache()
        return self._jwks

    def _secret(self, key: IdentityKey) -> bytes:
        if key.kid not in self._secrets:
            s = self.app.vault.get_secret(self.ws.ref, _KEY_OWNER.format(kid=key.kid), "hs256_secret")
            if s is None:
                raise IdentityError("key_missing")
            self._secrets[key.kid] = s.reveal().encode()
        return self._secrets[key.kid]

    def _select(self, token: str) -> tuple[dict[str, Any], IdentityKey | None, list[IdentityKey]]:
        """Checks that need no key; then (header, the registered key, or the JWKS sources to ask)."""
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
        live = [k for k in self.keys if k.active(iso(time.time()))]
        kid = header.get("kid")
        if kid is None:
            if len(live) != 1:
                raise IdentityError("kid_required")
            key = live[0]
            if key.kind == "jwks_url":
                raise IdentityError("kid_required")
        else:
            if not isinstance(kid, str):
                raise IdentityError("kid_not_string")
            exact = [k for k in live if k.kid == kid]
            if exact and exact[0].kind != "jwks_url":
                key = exact[0]
            else:
                # A JWKS row's own kid is only a label: the token's kid names a key inside the set.
                sources = exact or [k for k in live if k.kind == "jwks_url"]
                if not sources:
                    raise IdentityError("unknown_kid")
                fitting = [k for k in sources if k.alg == alg]
                if not fitting:
                    raise IdentityError("alg_mismatch")
                return header, None, fitting
        if alg != key.alg:  # each key is used with exactly one algorithm (RFC 8725 §3.1)
            raise IdentityError("alg_mismatch")
        return header, key, []

    def _registered_material(self, key: IdentityKey) -> Any:
        return self._secret(key) if key.kind == "secret" else key.public_key

    def verify(self, token: str) -> Visitor:
        header, key, sources = self._select(token)
        if key is not None:
            return self._decode(token, header, self._registered_material(key))
        urls = [s.jwks_url or "" for s in sources]
        return self._decode(token, header, self.jwks.key_sync(urls, header["kid"], header["alg"]))

    async def averify(self, token: str) -> Visitor:
        header, key, sources = self._select(token)
        if key is not None:
            return self._decode(token, header, self._registered_material(key))
        urls = [s.jwks_url or "" for s in sources]
        return self._decode(token, header, await self.jwks.key(urls, header["kid"], header["alg"]))

    def _decode(self, token: str, header: dict[str, Any], material: Any) -> Visitor:
        import jwt

        r = self.rules
        required = ["sub", "exp", "iat", "aud"] + (["iss"] if r.issuer else []) + (["jti"] if r.jti_replay else [])
        try:
            claims = jwt.decode(
                token, material, algorithms=[header["alg"]], audience=self.ws.name, issuer=r.issuer,
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
        except jwt.exceptions.InvalidJTIError:
            raise IdentityError("bad_jti") from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise IdentityError("invalid_token") from None
        # Signed header fields, checked once the signature holds (so a tampered header reads as such).
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ALLOWED_TYP):
            raise IdentityError("typ_not_allowed")  # e.g. at+jwt: an access token is not a visitor identity
        if "cty" in header:
            raise IdentityError("cty_not_allowed")  # nested tokens are not accepted
        if r.issuer is not None and claims.get("iss") != r.issuer:
            raise IdentityError("wrong_issuer")  # exact, whatever the JWT library's notion of a match
        visitor = self._visitor(claims, time.time())
        if r.jti_replay:
            jti = claims.get("jti")
            if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
                raise IdentityError("bad_jti")
            replay = self._replay or replay_cache()
            refused = replay.check_and_add(self.ws.id, jti, float(claims["exp"]) + LEEWAY_S)
            if refused:
                raise IdentityError(refused)
        return visitor

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
        email = _visitor_email(claims, self.rules)
        name = claims.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise IdentityError("bad_name")
        return Visitor(sub=sub, email=email, name=name)


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


# -- jti replay cache ----------------------------------------------------------------------------------

REPLAY_MAX_PER_WORKSPACE = 100_000


class ReplayCache:
    """The `jti`s this process has accepted, per workspace, each kept until its token expires (+ leeway).

    In memory: a restart forgets it (a token from before the restart can be used once more until it
    expires). A workspace holding `max_per_workspace` unexpired ids refuses new tokens
    (`replay_cache_full`) rather than forget one that could then be replayed.
    """

    def __init__(self, max_per_workspace: int = REPLAY_MAX_PER_WORKSPACE,
                 clock: Callable[[], float] = time.time) -> None:
        import threading

        self.max = max_per_workspace
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, float]] = {}
        self._expiry: dict[str, list[tuple[float, str]]] = {}

    def check_and_add(self, ws_id: str, jti: str, until: float) -> str | None:
        """None if `jti` is new here (and now remembered), else the refusal reason."""
        import heapq

        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(ws_id, {})
            heap = self._expiry.setdefault(ws_id, [])
            while heap and heap[0][0] <= now:
                t, old = heapq.heappop(heap)
                if seen.get(old) == t:
                    del seen[old]
            if jti in seen:
                return "replayed"
            if len(seen) >= self.max:
                return "replay_cache_full"
            seen[jti] = until
            heapq.heappush(heap, (until, jti))
            return None


_REPLAY: ReplayCache | None = None


def replay_cache() -> ReplayCache:
    global _REPLAY
    if _REPLAY is None:
        _REPLAY = ReplayCache()
    return _REPLAY


# -- JWKS: fetched off the request path ------------------------------------------------------------------

MAX_JWKS_BYTES = 1 << 20  # 1 MiB
MAX_JWKS_KEYS = 100
JWKS_REFRESH_S = 300.0  # a set is used at most this long after the fetch that produced it began
JWKS_MIN_REFRESH_S = 30.0  # the floor for a shorter Cache-Control max-age
JWKS_REFRESH_AT = 0.6  # the background refresh starts at this fraction of the interval
JWKS_FIRST_WAIT_S = 3.0  # a request may wait this long for its own workspace's first fetch
JWKS_DEADLINE_S = 5.0  # one fetch, connect to last byte
JWKS_MIN_REFETCH_S = 30.0  # an unknown kid refetches a set at most this often
JWKS_BACKOFF_CAP_S = 60.0
JWKS_IDLE_S = 3600.0  # a set nobody asked for in this long is dropped (and no longer refreshed)
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass
class _KeySet:
    url: str
    used_at: float
    keys: dict[str, list[dict[str, Any]]] | None = None  # kid -> JWKs (a kid may repeat)
    fetched_at: float = 0.0
    refresh_s: float = JWKS_REFRESH_S
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    inflight: Any = None  # concurrent.futures.Future while a fetch runs
    started_at: float = 0.0  # when that fetch began: nobody waits for it past started_at + first_wait_s
    parsed: dict[tuple[str, str], Any] | None = None


class _JwksFetchError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksCache:
    """Key sets of pinned JWKS URLs, shared by every workspace of the process.

    Fetched on a background thread of its own (its own event loop), never on a caller's: one fetch
    at a time per URL (every waiter shares it), a total deadline per fetch, 1 MiB and 100 keys at
    most, no redirects, no proxies from the environment. A set is used for `refresh_s` (5 min, or a
    shorter `Cache-Control: max-age`, not under 30 s) from the moment its fetch began, and refreshed in
    the background from 60% of that; after that it is gone, so a key the site removed stops verifying
    within the interval, also when the host stops answering. A failed fetch backs off (1 s doubling to
    60 s, with jitter), and meanwhile requests fail at once. The first fetch of a URL may be awaited
    for `first_wait_s`; an unknown kid refetches a set at most every `min_refetch_s`.
    """

    def __init__(self, *, refresh_s: float = JWKS_REFRESH_S, first_wait_s: float = JWKS_FIRST_WAIT_S,
                 deadline_s: float = JWKS_DEADLINE_S, min_refetch_s: float = JWKS_MIN_REFETCH_S,
                 max_bytes: int = MAX_JWKS_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        import threading

        self.refresh_s = refresh_s
        self.first_wait_s = first_wait_s
        self.deadline_s = deadline_s
        self.min_refetch_s = min_refetch_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.fetches = 0
        self._lock = threading.Lock()
        self._sets: dict[str, _KeySet] = {}
        self._loop: Any = None
        self._client: Any = None

    # -- the request path: never any I/O ----------------------------------------------------------

    def _lookup(self, urls: list[str], kid: str, alg: str, *, may_wait: bool
                ) -> tuple[Any, str | None, list[tuple[Any, float]]]:
        """(key, None, []) | (None, reason, []) | (None, None, [(fetch future, wait until), ...])."""
        reasons: list[str] = []
        fetching: list[_KeySet] = []
        with self._lock:
            now = self.clock()
            for url in urls:
                s = self._sets.get(url)
                if s is None:
                    s = self._sets[url] = _KeySet(url, used_at=now, refresh_s=self.refresh_s)
                s.used_at = now
                age = now - s.fetched_at
                if s.keys is not None and age >= s.refresh_s:
                    s.keys, s.parsed = None, None  # expired: never used again, whatever happens next
                if s.keys is not None:
                    if age >= JWKS_REFRESH_AT * s.refresh_s and s.retry_at <= now:
                        self._start(s)
                    found = self._key(s, kid, alg)
                    if isinstance(found, str):
                        reasons.append(found)
                    elif found is not None:
                        return found, None, []
                    elif age >= self.min_refetch_s and s.retry_at <= now:
                        self._start(s)  # maybe a key the site has just added
                        fetching.append(s)
                    elif s.inflight is not None:
                        fetching.append(s)
                    else:
                        reasons.append("unknown_kid")
                elif s.failures:
                    if s.retry_at <= now:
                        self._start(s)  # in the background: a host known to fail is not waited for
                    reasons.append(f"jwks_unavailable:{s.last_error}")
                else:
                    self._start(s)
                    fetching.append(s)
            # Nobody waits for a fetch longer than first_wait_s after it began, however late they came.
            waits = [(s.inflight, s.started_at + self.first_wait_s) for s in fetching
                     if s.inflight is not None and s.started_at + self.first_wait_s > now]
        if waits and may_wait:
            return None, None, waits
        if fetching:
            reasons.append("jwks_unavailable:pending")
        order = ("alg_mismatch", "ambiguous_kid", "unknown_kid")
        reasons.sort(key=lambda r: order.index(r) if r in order else -1)
        return None, (reasons[0] if reasons else "unknown_kid"), []

    def _key(self, s: _KeySet, kid: str, alg: str) -> Any:
        """The verification key for (kid, alg) in a fetched set, None if absent, or a refusal reason."""
        assert s.keys is not None
        if s.parsed is None:
            s.parsed = {}
        if (kid, alg) in s.parsed:
            return s.parsed[(kid, alg)]
        candidates = s.keys.get(kid) or []
        if not candidates:
            return None
        usable = [k for k in (_jwk_key(j, alg) for j in candidates) if k is not None]
        result: Any = usable[0] if len(usable) == 1 else ("ambiguous_kid" if usable else "alg_mismatch")
        s.parsed[(kid, alg)] = result
        return result

    def key_sync(self, urls: list[str], kid: str, alg: str) -> Any:
        import asyncio
        import concurrent.futures

        try:
            asyncio.get_running_loop()
            on_loop = True  # called on an event loop's thread: waiting would stall every other request
        except RuntimeError:
            on_loop = False
        key, reason, waits = self._lookup(urls, kid, alg, may_wait=not on_loop)
        if waits:
            concurrent.futures.wait([f for f, _ in waits], timeout=self._wait_s(waits))
            key, reason, _ = self._lookup(urls, kid, alg, may_wait=False)
        if key is None:
            raise IdentityError(reason or "unknown_kid")
        return key

    async def key(self, urls: list[str], kid: str, alg: str) -> Any:
        import asyncio

        key, reason, waits = self._lookup(urls, kid, alg, may_wait=True)
        if waits:
            # asyncio.wait never cancels what it waits for: the fetch is shared with other requests.
            await asyncio.wait([asyncio.wrap_future(f) for f, _ in waits], timeout=self._wait_s(waits))
            key, reason, _ = self._lookup(urls, kid, alg, may_wait=False)
        if key is None:
            raise IdentityError(reason or "unknown_kid")
        return key

    def _wait_s(self, waits: list[tuple[Any, float]]) -> float:
        return max(0.0, min(self.first_wait_s, max(until for _, until in waits) - self.clock()))

    # -- the fetcher thread -------------------------------------------------------------------------

    def _start(self, s: _KeySet) -> Any:
        """The running fetch of `s`, or a new one (called with the lock held)."""
        import concurrent.futures

        if s.inflight is not None:
            return s.inflight
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        s.inflight, s.started_at = future, self.clock()
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._fetch(s, future)))
        return future

    def _ensure_loop(self) -> Any:
        import asyncio
        import threading

        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="botctl-jwks", daemon=True).start()
            loop.call_soon_threadsafe(lambda: loop.create_task(self._tick()))
            self._loop = loop
        return self._loop

    async def _tick(self) -> None:
        """Refresh sets before they expire, retry failing ones, forget idle ones."""
        import asyncio

        while True:
            await asyncio.sleep(1.0)
            with self._lock:
                now = self.clock()
                for url, s in list(self._sets.items()):
                    if now - s.used_at > JWKS_IDLE_S and s.inflight is None:
                        del self._sets[url]
                    elif s.inflight is None and s.retry_at <= now and (
                            s.keys is None or now - s.fetched_at >= JWKS_REFRESH_AT * s.refresh_s):
                        self._start(s)

    async def _fetch(self, s: _KeySet, future: Any) -> None:
        import asyncio
        import logging
        import random

        started = s.started_at
        try:
            async with asyncio.timeout(self.deadline_s):
                keys, max_age = await self._download(s.url)
        except _JwksFetchError as exc:
            keys, max_age, error = None, None, exc.reason
        except TimeoutError:
            keys, max_age, error = None, None, "timeout"
        except Exception as exc:  # noqa: BLE001 - whatever happens, the waiters are released below
            keys, max_age, error = None, None, type(exc).__name__
        else:
            error = None
        with self._lock:
            self.fetches += 1
            if keys is not None:
                s.keys, s.parsed, s.fetched_at = keys, None, started
                s.refresh_s = min(self.refresh_s, max(JWKS_MIN_REFRESH_S, max_age)) if max_age is not None \
                    else self.refresh_s
                s.failures, s.retry_at, s.last_error = 0, 0.0, None
            else:
                if not s.failures or s.last_error != error:
                    logging.getLogger("botctl.identity").warning("JWKS %s: fetch failed (%s)", _where(s.url), error)
                s.failures += 1
                s.last_error = error
                wait = min(JWKS_BACKOFF_CAP_S, 2.0 ** (s.failures - 1))
                s.retry_at = self.clock() + wait * random.uniform(0.8, 1.0)
            s.inflight = None
        future.set_result(None)

    async def _download(self, url: str) -> tuple[dict[str, list[dict[str, Any]]], float | None]:
        import json

        import httpx

        from botctl.oauth import ResponseTooLarge, read_capped

        if not (url.startswith("https://") or is_loopback_url(url)):
            raise _JwksFetchError("not_https")
        if self._client is None:
            # No redirects (an https -> http downgrade, or a host nobody pinned), no proxies from the
            # environment; the deadline around the whole fetch is the caller's.
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                             timeout=httpx.Timeout(self.deadline_s),
                                             headers={"Accept": "application/json", "User-Agent": "botctl/0.1"})
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _JwksFetchError("redirect" if 300 <= response.status_code < 400
                                          else f"http_{response.status_code}")
                raw = await read_capped(response, self.max_bytes)
                cache_control = response.headers.get("cache-control", "")
        except ResponseTooLarge:
            raise _JwksFetchError("too_large") from None
        except httpx.TimeoutException:
            raise _JwksFetchError("timeout") from None
        except httpx.HTTPError as exc:
            raise _JwksFetchError(f"unreachable:{type(exc).__name__}") from None
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            raise _JwksFetchError("malformed") from None
        members = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(members, list):
            raise _JwksFetchError("malformed")
        if len(members) > MAX_JWKS_KEYS:
            raise _JwksFetchError("too_many_keys")
        keys: dict[str, list[dict[str, Any]]] = {}
        for jwk in members:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if _PRIVATE_JWK_MEMBERS & set(jwk):
                continue  # a private or symmetric key published by mistake verifies nothing here
            if jwk.get("use", "sig") != "sig":
                continue
            ops = jwk.get("key_ops")
            if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
                continue
            keys.setdefault(jwk["kid"], []).append(jwk)
        return keys, _max_age(cache_control)


def _max_age(cache_control: str) -> float | None:
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                return float(int(value.strip().strip('"')))
            except ValueError:
                return None
    return None


def _where(url: str) -> str:
    """A JWKS URL for a log line: scheme, host and path (never a query string)."""
    from urllib.parse import urlsplit

    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}{p.path}"


def _jwk_key(jwk: dict[str, Any], alg: str) -> Any:
    """The public key of one JWK for `alg`, or None when it does not fit the pinned algorithm."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if jwk.get("alg", alg) != alg:
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    if alg == "RS256":
        return key if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048 else None
    if alg == "ES256":
        return key if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1" else None
    return key if isinstance(key, ed25519.Ed25519PublicKey) else None


_JWKS: JwksCache | None = None


def jwks_cache() -> JwksCache:
    """The process-wide JWKS cache (the provider's)."""
    global _JWKS
    if _JWKS is None:
        _JWKS = JwksCache()
    return _JWKS


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
