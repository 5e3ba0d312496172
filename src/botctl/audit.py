"""The audit log: one record per security-relevant event, in an HMAC chain that `verify` checks.

Record (as shown and as `--json`)::

    {seq, ts, workspace, actor: {type, sub?, email?}, event, action, connector, outcome, reason,
     detail, request_id, prev_hash, hash}

Storage: ``audit.db`` table ``records(seq, body, prev_hash, hash)`` where ``body`` is the canonical JSON
(sorted keys, no whitespace, UTF-8) of the record without seq/prev_hash/hash. Filter columns are
generated from ``body``, so there is one source of truth and it is the MACed one.

    hash_n = HMAC-SHA256(audit_key, prev_hash || "|" || seq || "|" || body)

with ``prev_hash`` of record 1 = 64 zeros. The audit key is HKDF'd from the audit root key in the vault.
After each commit the head (seq, hash, MAC) is written to ``vault.db`` as a checkpoint, so a truncated
tail is detected even though the remaining chain is internally valid.
"""

from __future__ import annotations

import getpass
import hmac
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botctl import store
from botctl.errors import NotFound, UsageError
from botctl.home import Home

GENESIS = "0" * 64
# pending: an intent recorded before a vendor write (action.started); unknown: a write whose process died
# before its outcome was recorded (botctl/intents.py).
OUTCOMES = ("ok", "denied", "error", "pending", "unknown")
ACTOR_TYPES = ("operator", "ci", "visitor", "system")
_SECRET_KEY = re.compile(r"secret|token|passw|api_?key|authori[sz]ation|credential|private|cookie", re.I)
_RECORD_COLUMNS = "seq, body, prev_hash, hash"


def operator_actor() -> dict[str, str]:
    """The person or CI job running this command."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    kind = "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "operator"
    return {"type": kind, "sub": user}


SYSTEM_ACTOR = {"type": "system"}


def scrub(value: Any) -> Any:
    """Drop values under secret-looking keys. Records describe, they never carry credentials."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if _SECRET_KEY.search(str(k)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def make_record(
    event: str,
    *,
    workspace: str | None = None,
    actor: dict[str, Any] | None = None,
    action: str | None = None,
    connector: str | None = None,
    outcome: str = "ok",
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    request_id: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    actor = dict(actor or SYSTEM_ACTOR)
    if isinstance(actor.get("email"), str):
        actor["email"] = actor["email"].lower()
    if actor.get("type") not in ACTOR_TYPES:
        raise ValueError(f"actor type must be one of {ACTOR_TYPES}")
    return {
        "ts": ts or store.now_iso(),
        "workspace": workspace,
        "actor": {k: v for k, v in actor.items() if v is not None},
        "event": event,
        "action": action,
        "connector": connector,
        "outcome": outcome,
        "reason": reason,
        "detail": scrub(detail or {}),
        "request_id": request_id,
    }


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(body: dict[str, Any]) -> str:
    """Sorted keys, no whitespace, UTF-8: the exact bytes the chain MACs."""
    return _CANONICAL.encode(body)


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


def to_record(row: tuple[int, str, str, str]) -> dict[str, Any]:
    seq, body, prev_hash, hash_ = row
    return {"seq": seq, **json.loads(body), "prev_hash": prev_hash, "hash": hash_}


def open_audit_db(home: Home) -> sqlite3.Connection:
    home.ensure()
    conn = store.connect(home.audit_db, durable=True)
    store.migrate(conn, store.AUDIT_MIGRATIONS, what=str(home.audit_db))
    return conn


class AuditWriter:
    """Appends records. Safe across threads of one process (one lock) and across processes (SQLite's)."""

    def __init__(self, home: Home, key: bytes, vault_conn: sqlite3.Connection) -> None:
        import threading

        self.home = home
        self._key = key
        self._mac = ChainMac(key)
        self._vault = vault_conn
        self._conn = open_audit_db(home)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.append_many([record])[0]

    def append_many(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append `records` in one transaction; they are durable (fsynced) when this returns."""
        records = list(records)
        bodies = [canonical(r) for r in records]
        if not bodies:
            return []
        with self._lock:
            with store.transaction(self._conn):
                row = self._conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0], row[1]) if row else (0, GENESIS)
                rows = []
                for body in bodies:
                    seq += 1
                    h = self._mac.link(prev, seq, body.encode())
                    rows.append((seq, body, prev, h))
                    prev = h
                self._conn.executemany("INSERT INTO records (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)", rows)
            self._checkpoint(seq, prev)
        return [{"seq": r[0], **rec, "prev_hash": r[2], "hash": r[3]} for r, rec in zip(rows, records, strict=True)]

    def _checkpoint(self, seq: int, head: str) -> None:
        # Only moves forward: concurrent writers may commit their checkpoints out of order.
        sql = (
            "INSERT INTO audit_checkpoint (id, seq, hash, mac, updated_at) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, "
            "updated_at = excluded.updated_at WHERE excluded.seq > audit_checkpoint.seq"
        )
        # One statement: inside the caller's vault transaction if there is one, else its own.
        self._vault.execute(sql, (seq, head, checkpoint_mac(self._key, seq, head), store.now_iso()))


# -- reading ---------------------------------------------------------------------------------------

_SINCE = re.compile(r"^(\d+)\s*([smhdw])$")


def parse_since(text: str, *, now: datetime | None = None) -> str:
    """`10m`, `2h`, `3d`, `1w`, or an ISO date/time (taken as UTC when it has no offset)."""
    now = now or datetime.now(UTC)
    m = _SINCE.match(text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {"s": timedelta(seconds=n), "m": timedelta(minutes=n), "h": timedelta(hours=n),
                 "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        when = now - delta
    else:
        try:
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"--since {text!r} is neither a duration nor a date.",
                hint="Use e.g. 10m, 2h, 3d, or 2026-11-01T00:00.",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Filters:
    workspace: str | None = None
    event: str | None = None
    action: str | None = None
    outcome: str | None = None
    visitor: str | None = None
    since: str | None = None  # ISO, already parsed

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for column, value in (("workspace", self.workspace), ("event", self.event), ("action", self.action),
                              ("outcome", self.outcome), ("visitor_email", self.visitor)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value.lower() if column == "visitor_email" else value)
        if self.since is not None:
            clauses.append("ts >= ?")
            args.append(self.since)
        return (" AND ".join(clauses) or "1"), args


class AuditReader:
    """Reads need no key: anyone who may read audit.db may read the records; only verify needs it."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._conn: sqlite3.Connection | None = None
        self._open()

    def _open(self) -> sqlite3.Connection | None:
        """Connect once the log exists (a reader may start before the first record is written)."""
        if self._conn is None and self.home.audit_db.exists():
            conn = store.connect(self.home.audit_db, durable=True)
            store.check_version(conn, store.AUDIT_MIGRATIONS, what=str(self.home.audit_db))
            if store.schema_version(conn) == 0:
                conn.close()
            else:
                self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def latest(self, filters: Filters, limit: int) -> list[dict[str, Any]]:
        if self._conn is None:
            return []
        where, args = filters.where()
        rows = self._conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE {where} ORDER BY seq DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [to_record(r) for r in reversed(rows)]

    def after(self, seq: int, filters: Filters, limit: int = 1000) -> list[dict[str, Any]]:
        conn = self._open()
        if conn is None:
            return []
        where, args = filters.where()
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq > ? AND {where} ORDER BY seq LIMIT ?", (seq, *args, limit)
        ).fetchall()
        return [to_record(r) for r in rows]

    def head_seq(self) -> int:
        if self._conn is None:
            return 0
        row = self._conn.execute("SELECT max(seq) FROM records").fetchone()
        return row[0] or 0

    def get(self, seq: int) -> dict[str, Any]:
        row = None
        if self._conn is not None:
            row = self._conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise NotFound(f"no audit record with seq {seq}.", hint="List records with `botctl audit -n 50`.")
        return to_record(row)

    def follow(self, filters: Filters, *, start_after: int, interval: float = 0.25) -> Iterator[dict[str, Any]]:
        import time

        last = start_after
        while True:
            batch = self.after(last, Filters(), limit=1000)
            if batch:
                last = batch[-1]["seq"]
                where_ok = _matcher(filters)
                for rec in batch:
                    if where_ok(rec):
                        yield rec
                continue
            time.sleep(interval)


def _matcher(f: Filters):
    def ok(rec: dict[str, Any]) -> bool:
        return (
            (f.workspace is None or rec.get("workspace") == f.workspace)
            and (f.event is None or rec.get("event") == f.event)
            and (f.action is None or rec.get("action") == f.action)
            and (f.outcome is None or rec.get("outcome") == f.outcome)
            and (f.visitor is None or (rec.get("actor") or {}).get("email") == f.visitor.lower())
            and (f.since is None or rec.get("ts", "") >= f.since)
        )

    return ok


# -- verifying -------------------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoint_seq: int | None = None
    first_bad_seq: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoint_seq": self.checkpoint_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "notes": self.notes,
        }


def verify(home: Home, key: bytes, vault_conn: sqlite3.Connection) -> Verdict:
    """Walk the whole chain, then hold its head against the checkpoint in vault.db."""
    cp = vault_conn.execute("SELECT seq, hash, mac FROM audit_checkpoint WHERE id = 1").fetchone()
    if cp is not None and not hmac.compare_digest(cp[2], checkpoint_mac(key, cp[0], cp[1])):
        return Verdict(False, checkpoint_seq=cp[0], first_bad_seq=cp[0],
                       problem="the checkpoint in vault.db does not authenticate (edited or forged)")
    cp_seq = cp[0] if cp else None
    if not home.audit_db.exists():
        if cp is not None:
            return Verdict(False, checkpoint_seq=cp_seq, first_bad_seq=1,
                           problem=f"audit.db is missing but the checkpoint says {cp_seq} records were written")
        return Verdict(True, notes=["no audit records yet"])
    conn = store.connect(home.audit_db, durable=True)
    try:
        store.check_version(conn, store.AUDIT_MIGRATIONS, what=str(home.audit_db))
        if store.schema_version(conn) == 0:
            rows: Iterable[tuple[int, bytes, str, str]] = ()
        else:
            # body as bytes straight from SQLite: no per-row encode in the hot loop.
            rows = conn.execute("SELECT seq, CAST(body AS BLOB), prev_hash, hash FROM records ORDER BY seq")
        expected, prev, count = 1, GENESIS, 0
        link = ChainMac(key).link
        for seq, body, prev_hash, hash_ in rows:
            if seq != expected:
                problem = (f"record {expected} is missing (next is {seq})" if seq > expected
                           else f"record {seq} is out of order")
                return Verdict(False, count, expected - 1, prev, cp_seq, expected, problem)
            # A plain comparison is fine here: verify runs offline and answers no one, so there is
            # no timing oracle to protect.
            if prev_hash != prev or link(prev, seq, body) != hash_:
                return Verdict(False, count, seq - 1, prev, cp_seq, seq,
                               f"record {seq} does not match its chain hash (edited, swapped or forged)")
            prev = hash_
            expected += 1
            count += 1
    finally:
        conn.close()
    head_seq = expected - 1
    verdict = Verdict(True, count, head_seq, prev, cp_seq)
    if cp is None:
        if count:
            verdict.notes.append("no checkpoint yet: truncation of the tail cannot be ruled out")
        return verdict
    if head_seq < cp[0]:
        return Verdict(False, count, head_seq, prev, cp_seq, head_seq + 1,
                       f"the log ends at record {head_seq} but the checkpoint says {cp[0]} (tail truncated)")
    if head_seq >= cp[0] and cp[0] > 0:
        row_hash = _hash_at(home, cp[0])
        if row_hash is None or not hmac.compare_digest(row_hash, cp[1]):
            return Verdict(False, count, head_seq, prev, cp_seq, cp[0],
                           f"record {cp[0]} differs from the checkpoint (the log was rewritten)")
    if head_seq > cp[0]:
        verdict.notes.append(f"{head_seq - cp[0]} record(s) after the last checkpoint (a write was interrupted)")
    return verdict


def _hash_at(home: Home, seq: int) -> str | None:
    conn = store.connect(home.audit_db, durable=True)
    try:
        row = conn.execute("SELECT hash FROM records WHERE seq = ?", (seq,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


class GroupCommitter:
    """Group commit for the daemon: callers from any thread or task submit a record and wait until it is
    durable; one writer thread commits whatever has queued up in one transaction (one fsync per batch).

    Under load many requests share an fsync, so durability costs little throughput; at rest a lone
    record is committed at once (no timer, no added latency).
    """

    def __init__(self, writer: AuditWriter, *, max_batch: int = 500) -> None:
        import queue
        import threading

        self._writer = writer
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_batch = max_batch
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="botctl-audit-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.records = 0

    def submit(self, record: dict[str, Any]):  # -> concurrent.futures.Future[dict]
        from concurrent.futures import Future

        if self._closed:
            raise RuntimeError("audit writer is closed")
        fut: Future = Future()
        self._queue.put((record, fut))
        return fut

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.submit(record).result()

    async def append_async(self, record: dict[str, Any]) -> dict[str, Any]:
        import asyncio

        return await asyncio.wrap_future(self.submit(record))

    def _run(self) -> None:
        import queue

        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                written = self._writer.append_many([r for r, _ in batch])
            except BaseException as exc:  # fail closed: every waiter learns the record is not durable
                for _, fut in batch:
                    fut.set_exception(exc)
            else:
                self.batches += 1
                self.records += len(batch)
                for (_, fut), rec in zip(batch, written, strict=True):
                    fut.set_result(rec)
            if stop:
                return

    def close(self) -> None:
        """Commit everything already submitted, then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)
