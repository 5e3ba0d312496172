"""Anchors: Ed25519-signed `{seq, hash, ts}` lines kept off the machine, and the points verify holds
the chain against (anchor files, --expect-head)."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from botctl import store
from botctl.audit.chain import head_state
from botctl.errors import AuditChainBroken, NotFound, UsageError
from botctl.home import Home

# Ed25519 rather than an HMAC: whoever holds an anchor file (another machine, an auditor, a monitor)
# can be given the public key and check the lines without being able to forge one, whereas an HMAC key
# handed to them would let them forge anchors (and is the chain's own secret). The private key is
# derived from the audit key (HKDF), so nothing new is stored and master-key rotation keeps it.

ANCHOR_INFO = b"botctl/audit/anchor/v1"
ANCHOR_FIELDS = ("v", "seq", "hash", "ts", "key_id", "sig")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Anchor:
    """A point the chain must still reach: record `seq` with `hash` (from an anchor file or --expect-head)."""

    seq: int
    hash: str
    where: str  # how to name it in a verdict
    authentic: bool = True  # False: an anchor line whose signature is not this vault's
    ts: str | None = None  # when it was signed (anchor lines)


def anchor_message(seq: int, head: str, ts: str) -> bytes:
    """The exact bytes an anchor signs: `botctl-audit-anchor/v1|<seq>|<hash>|<ts>`."""
    return b"botctl-audit-anchor/v1|%d|%s|%s" % (seq, head.encode(), ts.encode())


def _anchor_signer(key: bytes):  # noqa: ANN202 - Ed25519PrivateKey, imported lazily
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from botctl import crypto

    return Ed25519PrivateKey.from_private_bytes(crypto.hkdf(key, ANCHOR_INFO))


def anchor_public_key(key: bytes) -> dict[str, str]:
    """The verifying half: {"key_id", "public_key_pem"} (SubjectPublicKeyInfo, as openssl reads it)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    public = _anchor_signer(key).public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return {"key_id": hashlib.sha256(raw).hexdigest()[:16], "public_key_pem": pem}


def make_anchor(home: Home, key: bytes, vault_conn: sqlite3.Connection) -> dict[str, Any]:
    """A signed `{v, seq, hash, ts, key_id, sig}` for the current head (refused on a broken head)."""
    state = head_state(home, key, vault_conn)
    if state["chain"] != "ok":
        raise AuditChainBroken(
            f"not anchoring a broken head: {state['problem']}.",
            hint="See `botctl audit verify`; `botctl audit seal-break --reason TEXT` records the break.",
        )
    if state["head_seq"] == 0:
        raise NotFound(
            "nothing to anchor yet: the audit log has no records.", hint="Run `botctl init` first."
        )
    return sign_anchor(key, state["head_seq"], state["head_hash"])


def sign_anchor(key: bytes, seq: int, head: str) -> dict[str, Any]:
    """A signed `{v, seq, hash, ts, key_id, sig}` for record `seq` (the caller has checked the chain to it)."""
    import base64

    ts = store.now_iso()
    sig = _anchor_signer(key).sign(anchor_message(seq, head, ts))
    return {
        "v": 1,
        "seq": seq,
        "hash": head,
        "ts": ts,
        "key_id": anchor_public_key(key)["key_id"],
        "sig": base64.b64encode(sig).decode(),
    }


def load_anchors(path: str, key: bytes) -> list[Anchor]:
    """Parse an anchor file (one JSON line each) and check every signature. Malformed: UsageError (exit 2)."""
    import base64
    import binascii

    from cryptography.exceptions import InvalidSignature

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UsageError(
            f"cannot read the anchor file {path!r}: {why}.",
            hint="Give the file `botctl audit anchor --out FILE` wrote.",
        ) from None
    public = _anchor_signer(key).public_key()
    key_id = anchor_public_key(key)["key_id"]
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            a = json.loads(line)
        except ValueError:
            a = None
        why = _malformed_anchor(a)
        sig = b""
        if why is None:
            try:
                sig = base64.b64decode(a["sig"], validate=True)
            except (binascii.Error, ValueError):
                why = "sig is not base64"
        if why is not None:
            raise UsageError(
                f"{where}: not a botctl audit anchor line ({why}).",
                hint="Anchor files hold the lines `botctl audit anchor` prints, one per line.",
            )
        authentic = a["key_id"] == key_id
        if authentic:
            try:
                public.verify(sig, anchor_message(a["seq"], a["hash"], a["ts"]))
            except InvalidSignature:
                authentic = False
        out.append(Anchor(a["seq"], a["hash"], f"the anchor at {where} ({a['ts']})", authentic, a["ts"]))
    if not out:
        raise UsageError(
            f"the anchor file {path!r} holds no anchors.",
            hint="Append one with `botctl audit anchor --out FILE`.",
        )
    return out


def _malformed_anchor(a: Any) -> str | None:
    if not isinstance(a, dict):
        return "not a JSON object"
    missing = [k for k in ANCHOR_FIELDS if k not in a]
    if missing:
        return f"missing {', '.join(missing)}"
    if a["v"] != 1:
        return "unknown version"
    if not isinstance(a["seq"], int) or isinstance(a["seq"], bool) or a["seq"] < 1:
        return "seq is not a positive integer"
    if not isinstance(a["hash"], str) or not _HEX64.match(a["hash"]):
        return "hash is not 64 hex digits"
    if not all(isinstance(a[k], str) for k in ("ts", "key_id", "sig")):
        return "ts, key_id and sig must be strings"
    return None


def parse_expect_head(text: str) -> Anchor:
    """`SEQ:HASH` from --expect-head."""
    seq, sep, head = text.strip().partition(":")
    head = head.lower()
    if not sep or not seq.isdigit() or int(seq) < 1 or not _HEX64.match(head):
        raise UsageError(
            f"--expect-head {text!r} is not SEQ:HASH.",
            hint="e.g. --expect-head 1234:<the 64 hex digits `botctl audit show 1234` prints as hash>.",
        )
    return Anchor(int(seq), head, f"--expect-head {int(seq)}:{head[:12]}…")
