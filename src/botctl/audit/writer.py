"""AuditWriter: appends records behind a head-vs-checkpoint check, moves the checkpoint, seals breaks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

from botctl import store
from botctl.audit.chain import (
    _CHECKPOINT_SQL,
    _HEAD_SQL,
    GENESIS,
    ChainMac,
    HeadProblem,
    checkpoint_mac,
    head_problem,
)
from botctl.audit.records import SEAL_EVENT, canonical, make_record, operator_actor
from botctl.errors import BotctlError
from botctl.home import Home

# A condition a record is written under: called with the vault's connection inside the append's
# transaction (on SQLite, a write transaction on vault.db held around the audit one), it makes its change
# there and says whether the record is to be written. False: the record is left out, the change rolls back
# with nothing else (botctl/intents.py: the outcome of a write only while its intent is still pending).
Guard = Callable[[Any], bool]


def open_audit_db(home: Home):  # noqa: ANN201 - sqlite3.Connection | PgConnection
    return store.open_audit(home)


class AuditWriter:
    """Appends records. Safe across threads of one process (one lock) and across processes (SQLite's).

    Fails closed: every append first holds the head against the checkpoint (`head_problem`) inside its
    transaction and raises `AuditChainBroken` instead of chaining onto a broken head.
    """

    def __init__(self, home: Home, key: bytes, vault_conn: Any) -> None:
        import threading

        self.home = home
        self._key = key
        self._mac = ChainMac(key)
        self._vault = vault_conn
        self._conn = open_audit_db(home)
        # PostgreSQL: one database, so the records are written on the vault's connection, inside the
        # caller's transaction when there is one: a change, its records and the checkpoint commit together,
        # and the write lock that transaction holds is the chain head's lock (docs/architecture.md).
        self._shared = store.dialect(vault_conn) == "postgresql"
        if self._shared:
            self._conn.close()
            self._conn = vault_conn
        self._lock = threading.Lock()
        self._trusted: tuple | None = None  # the last checkpoint row this writer authenticated or wrote

    def close(self) -> None:
        if not self._shared:
            self._conn.close()

    def append(self, record: dict[str, Any], *, guard: Guard | None = None) -> dict[str, Any] | None:
        """Append one record (None: its `guard` said no, nothing written)."""
        return self.append_many([record], guards=[guard])[0]

    def _check_head(self, seq: int, prev: str) -> tuple[HeadProblem | None, tuple | None]:
        cp = self._vault.execute(_CHECKPOINT_SQL).fetchone()
        problem = head_problem(self._conn, cp, self._key, seq, prev, trusted=self._trusted)
        if problem is None and cp is not None:
            self._trusted = tuple(cp)
        return problem, cp

    def append_many(
        self, records: Iterable[dict[str, Any]], *, guards: Sequence[Guard | None] | None = None
    ) -> list[dict[str, Any] | None]:
        """Append `records` in one transaction; they are durable (fsynced) when this returns.

        `guards[i]` (optional) is record i's condition (`Guard`), run inside the transaction: where it says
        no, record i is not written and its slot in the result is None. A guard's change and its record
        commit together (PostgreSQL: one transaction; SQLite: vault.db's transaction is held around
        audit.db's and commits just after it)."""
        records = list(records)
        guards = list(guards) if guards is not None else [None] * len(records)
        if not records:
            return []
        guarded = any(g is not None for g in guards)
        with self._lock:
            with self._vault_held(guarded):
                with store.transaction(self._conn):
                    row = self._conn.execute(_HEAD_SQL).fetchone()
                    seq, prev = (row[0], row[1]) if row else (0, GENESIS)
                    problem, _ = self._check_head(seq, prev)
                    if problem is not None:
                        raise problem.error()
                    kept = [g is None or g(self._vault) for g in guards]
                    rows: list[tuple | None] = []
                    for rec, keep in zip(records, kept, strict=True):
                        if not keep:
                            rows.append(None)
                            continue
                        body = canonical(rec)
                        seq += 1
                        h = self._mac.link(prev, seq, body.encode())
                        rows.append((seq, body, prev, h))
                        prev = h
                    written = [r for r in rows if r is not None]
                    if written:
                        self._conn.executemany(
                            "INSERT INTO records (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)", written
                        )
                    if (
                        written and self._shared
                    ):  # inside the transaction: commits with it; `audit -f` listens
                        self._checkpoint(seq, prev)
                        self._conn.execute("SELECT pg_notify('botctl_audit', ?)", (str(seq),))
                if written and not self._shared:
                    self._checkpoint(seq, prev)
        return [
            None if r is None else {"seq": r[0], **rec, "prev_hash": r[2], "hash": r[3]}
            for r, rec in zip(rows, records, strict=True)
        ]

    def _vault_held(self, guarded: bool):  # noqa: ANN202 - a context manager
        """SQLite, a guard to run: vault.db's write transaction around the audit one (lock order as
        everywhere: vault held, then audit), unless the caller's own already holds it. PostgreSQL: one
        database, the audit transaction is the guard's too."""
        if not guarded or self._shared or getattr(self._vault, "in_transaction", False):
            return nullcontext()
        return store.transaction(self._vault)

    def seal_break(self, note: str, *, actor: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a head/checkpoint break in the chain itself and move the checkpoint to that record.

        The `audit.seal_break` record carries what the checkpoint said (`expected`) and what the head was
        (`found`), so the evidence stays in the log; `verify` lists it. Raises `BotctlError`
        (`audit_chain_intact`) when there is nothing to seal.
        """
        with self._lock:
            # Lock order as everywhere: vault held, then audit; the forced checkpoint commits with the vault.
            with store.transaction(self._vault):
                with store.transaction(self._conn):
                    row = self._conn.execute(_HEAD_SQL).fetchone()
                    seq, prev = (row[0], row[1]) if row else (0, GENESIS)
                    problem, _ = self._check_head(seq, prev)
                    if problem is None:
                        raise BotctlError(
                            "nothing to seal: the audit log's head matches its checkpoint.",
                            hint="`botctl audit verify` checks the whole chain.",
                            code="audit_chain_intact",
                        )
                    expected = None
                    if problem.checkpoint is not None:
                        expected = {
                            "seq": problem.checkpoint[0],
                            "hash": problem.checkpoint[1],
                            "authenticated": problem.checkpoint_authentic,
                        }
                    record = make_record(
                        SEAL_EVENT,
                        actor=actor or operator_actor(),
                        reason=problem.kind,
                        detail={
                            "expected": expected,
                            "found": {"seq": seq, "hash": prev},
                            "problem": problem.message,
                            "note": note,
                        },
                    )
                    body = canonical(record)
                    seq += 1
                    h = self._mac.link(prev, seq, body.encode())
                    self._conn.execute(
                        "INSERT INTO records (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)",
                        (seq, body, prev, h),
                    )
                self._checkpoint(seq, h, force=True)
        return {"seq": seq, **record, "prev_hash": prev, "hash": h}

    def _checkpoint(self, seq: int, head: str, *, force: bool = False) -> None:
        # Only moves forward: concurrent writers may commit their checkpoints out of order. A sealed break
        # is the exception: its record may sit below the checkpoint it replaces (a deleted tail).
        sql = (
            "INSERT INTO audit_checkpoint (id, seq, hash, mac, updated_at) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, "
            "updated_at = excluded.updated_at"
            + ("" if force else " WHERE excluded.seq > audit_checkpoint.seq")
        )
        mac = checkpoint_mac(self._key, seq, head)
        # One statement: inside the caller's vault transaction if there is one, else its own.
        self._vault.execute(sql, (seq, head, mac, store.now_iso()))
        self._trusted = (seq, head, mac)
