"""A workspace's identity keys: HS256 secrets (generated here, rotated with an overlap), the site's
public keys (PEM) and pinned JWKS URLs, as rows of `identity_keys`; the secrets are vault secrets."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import Conflict, NotFound, UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.session import Session
    from botctl.workspaces import Workspace

DEFAULT_OVERLAP_S = 24 * 3600
_KEY_OWNER = "identity:{kid}"


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
        return {
            "kid": self.kid,
            "alg": self.alg,
            "kind": self.kind,
            "jwks_url": self.jwks_url,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }


def iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def list_keys(conn: sqlite3.Connection, ws: Workspace) -> list[IdentityKey]:
    rows = conn.execute(
        "SELECT kid, alg, kind, public_key, jwks_url, created_at, expires_at FROM identity_keys "
        "WHERE workspace_id = ? ORDER BY created_at",
        (ws.id,),
    ).fetchall()
    return [IdentityKey(*r) for r in rows]


def _new_kid() -> str:
    return "k" + time.strftime("%Y%m%d") + "-" + os.urandom(3).hex()


def rotate(
    app: Session, ws: Workspace, *, overlap_s: int = DEFAULT_OVERLAP_S, expire_previous: bool = False
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
                vault.conn.execute(
                    "UPDATE identity_keys SET expires_at = ? WHERE workspace_id = ? AND kid = ?",
                    (ends, ws.id, k.kid),
                )
        vault.conn.execute(
            "INSERT INTO identity_keys (workspace_id, kid, alg, kind, created_at) "
            "VALUES (?, ?, 'HS256', 'secret', ?)",
            (ws.id, kid, iso(now)),
        )
        vault.put_secret(ws.ref, _KEY_OWNER.format(kid=kid), "hs256_secret", secret)
        app.audit(
            "identity.key_rotated",
            workspace=ws.name,
            detail={
                "kid": kid,
                "alg": "HS256",
                "previous": [k.kid for k in previous],
                "previous_valid_until": ends if previous else None,
            },
        )
    key = next(k for k in list_keys(vault.conn, ws) if k.kid == kid)
    return key, secret


def add_public_key(
    app: Session,
    ws: Workspace,
    *,
    alg: str,
    pem: str | None = None,
    jwks_url: str | None = None,
    kid: str | None = None,
) -> IdentityKey:
    if alg not in ("RS256", "ES256", "EdDSA"):
        raise UsageError(
            f"unsupported algorithm {alg!r} for a public key.", hint="Use RS256, ES256 or EdDSA."
        )
    if (pem is None) == (jwks_url is None):
        raise UsageError("give exactly one of --public-key FILE or --jwks-url URL.")
    if pem is not None:
        check_public_key(pem, alg)
    if jwks_url is not None and not jwks_url.startswith("https://") and not is_loopback_url(jwks_url):
        raise UsageError(
            "--jwks-url must be an https:// URL.",
            hint="JWKS fetched over plain HTTP could be replaced in transit.",
        )
    kid = kid or _new_kid()
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", kid):
        raise UsageError(
            f"invalid --kid {kid!r}.", hint="Use letters, digits, '.', '_', ':' or '-' (at most 128)."
        )
    vault = app.vault
    with store.transaction(vault.conn):
        if any(k.kid == kid for k in list_keys(vault.conn, ws)):
            raise Conflict(f"workspace {ws.name!r} already has a key with kid {kid!r}.")
        vault.conn.execute(
            "INSERT INTO identity_keys (workspace_id, kid, alg, kind, public_key, jwks_url, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ws.id, kid, alg, "public_key" if pem else "jwks_url", pem, jwks_url, iso(time.time())),
        )
        app.audit(
            "identity.key_added",
            workspace=ws.name,
            detail={
                "kid": kid,
                "alg": alg,
                "kind": "public_key" if pem else "jwks_url",
                "jwks_url": jwks_url,
            },
        )
    return next(k for k in list_keys(vault.conn, ws) if k.kid == kid)


def remove_key(app: Session, ws: Workspace, kid: str) -> None:
    vault = app.vault
    with store.transaction(vault.conn):
        if not any(k.kid == kid for k in list_keys(vault.conn, ws)):
            raise NotFound(
                f"workspace {ws.name!r} has no identity key {kid!r}.",
                hint=f"See `botctl identity list -w {ws.name}`.",
            )
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
        raise UsageError(
            "the file is not a PEM public key.",
            hint="Export the public half, e.g. openssl pkey -in private.pem -pubout",
        ) from None
    want = {"RS256": rsa.RSAPublicKey, "ES256": ec.EllipticCurvePublicKey, "EdDSA": ed25519.Ed25519PublicKey}[
        alg
    ]
    if not isinstance(key, want):
        raise UsageError(f"that public key does not fit {alg}.")
    if alg == "RS256" and key.key_size < 2048:  # type: ignore[union-attr]
        raise UsageError("RSA keys must be at least 2048 bits.")
    if alg == "ES256" and key.curve.name != "secp256r1":  # type: ignore[union-attr]
        raise UsageError("ES256 needs a P-256 key.")
