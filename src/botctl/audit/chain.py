"""The chain: its MAC (`ChainMac`), the checkpoint's MAC, and the head held against the checkpoint
(`head_problem`, `head_state`), the check every append makes before it writes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from botctl import store
from botctl.errors import AuditChainBroken
from botctl.home import Home

GENESIS = "0" * 64


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class ChainMac:
    """HMAC-SHA256 (RFC 2104) with the key schedule done once.

    `hmac.digest` re-derives the padded keys on every call; at 100,000 records that was half of
    `verify`'s time. Here the inner and outer SHA-256 states are computed once and copied per message.
    tests/test_audit.py checks it against `hmac.digest` on random keys and messages.
    """

    def __init__(self, key: bytes) -> None:
        import hashlib

        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def link(self, prev_hash: str, seq: int, body: bytes) -> str:
        return self.hexdigest(b"%s|%d|%s" % (prev_hash.encode(), seq, body))


def checkpoint_mac(key: bytes, seq: int, head: str) -> str:
    return hmac.digest(key, b"checkpoint|%d|%s" % (seq, head.encode()), "sha256").hex()


_CHECKPOINT_SQL = "SELECT seq, hash, mac FROM audit_checkpoint WHERE id = 1"


@dataclass
class HeadProblem:
    """The log's head disagrees with the checkpoint: what kind, in words, and both sides."""

    kind: str  # checkpoint_missing | checkpoint_forged | truncated | rewritten
    message: str
    head_seq: int
    head_hash: str
    checkpoint: tuple[int, str] | None  # (seq, hash) as found in vault.db
    checkpoint_authentic: bool

    def state(self) -> dict[str, Any]:
        return {
            "chain": "broken",
            "problem": self.message,
            "kind": self.kind,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoint_seq": self.checkpoint[0] if self.checkpoint else None,
            "checkpoint_hash": self.checkpoint[1] if self.checkpoint else None,
        }

    def error(self) -> AuditChainBroken:
        exc = AuditChainBroken(
            f"the audit log's head disagrees with its checkpoint: {self.message}; nothing is written onto it.",
            hint="Keep copies of audit.db and vault.db, see `botctl audit verify`, then record the break with "
            "`botctl audit seal-break --reason TEXT`.",
        )
        exc.state = self.state()  # type: ignore[attr-defined]
        return exc


def head_problem(
    conn: Any,
    cp: tuple[int, str, str] | None,
    key: bytes,
    head_seq: int,
    head_hash: str,
    *,
    trusted: tuple | None = None,
) -> HeadProblem | None:
    """Hold the head (`head_seq`, `head_hash`, read from `conn`) against the checkpoint row `cp`.

    Cheap enough for every append: no walk. Equal seqs compare the hashes; a head past the checkpoint
    (a writer died between its commit and its checkpoint, or another one is about to move it) looks up
    the one record the checkpoint names. `trusted`: a row already known authentic (skips the HMAC).
    """
    if cp is None:
        if head_seq == 0:
            return None
        return HeadProblem(
            "checkpoint_missing",
            f"{head_seq} records but no checkpoint in vault.db (deleted)",
            head_seq,
            head_hash,
            None,
            False,
        )
    cp_seq, cp_hash, cp_mac = cp
    if cp != trusted and not hmac.compare_digest(cp_mac, checkpoint_mac(key, cp_seq, cp_hash)):
        return HeadProblem(
            "checkpoint_forged",
            "the checkpoint in vault.db does not authenticate (edited or forged)",
            head_seq,
            head_hash,
            (cp_seq, cp_hash),
            False,
        )
    if head_seq < cp_seq:
        return HeadProblem(
            "truncated",
            f"the log ends at record {head_seq} but the checkpoint says {cp_seq} (tail deleted)",
            head_seq,
            head_hash,
            (cp_seq, cp_hash),
            True,
        )
    if head_seq == cp_seq:
        at: str | None = head_hash
    else:
        row = conn.execute("SELECT hash FROM records WHERE seq = ?", (cp_seq,)).fetchone() if conn else None
        at = row[0] if row else None
    if at != cp_hash:
        what = (
            "differs from the checkpoint (the log was rewritten)"
            if at
            else "is missing (the checkpoint names it)"
        )
        return HeadProblem(
            "rewritten", f"record {cp_seq} {what}", head_seq, head_hash, (cp_seq, cp_hash), True
        )
    return None


_HEAD_SQL = "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"


def head_state(home: Home, key: bytes, vault_conn: Any) -> dict[str, Any]:
    """Whether a writer would accept the head now (`{"chain": "ok" | "broken", ...}`), without writing."""
    cp = vault_conn.execute(
        _CHECKPOINT_SQL
    ).fetchone()  # first: records always commit before their checkpoint
    conn = store.open_audit_reader(home)
    if conn is None:
        problem = head_problem(None, cp, key, 0, GENESIS)
        return (
            problem.state()
            if problem
            else {"chain": "ok", "head_seq": 0, "head_hash": GENESIS, "checkpoint_seq": None}
        )
    try:
        row = conn.execute(_HEAD_SQL).fetchone()
        seq, prev = (row[0], row[1]) if row else (0, GENESIS)
        problem = head_problem(conn, cp, key, seq, prev)
    finally:
        conn.close()
    if problem is not None:
        return problem.state()
    return {"chain": "ok", "head_seq": seq, "head_hash": prev, "checkpoint_seq": cp[0] if cp else None}
