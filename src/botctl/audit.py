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

Before every append the writer holds the head against that checkpoint (`head_problem`) and refuses to
chain onto a head that disagrees (`AuditChainBroken`): otherwise the next checkpoint would cover a
deleted or rewritten tail. `AuditWriter.seal_break` is the one way past such a break, and it records
the break (what the checkpoint said, what the head was) as an ``audit.seal_break`` record in the chain.

Anchors (`make_anchor`, `load_anchors`) are Ed25519-signed ``{seq, hash, ts}`` lines meant to be kept
off the machine; `verify(..., anchors=...)` checks that the chain still reaches each of them.
"""

from __future__ import annotations

import getpass
import hmac
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botctl import store
from botctl.durations import parse_since  # noqa: F401 - re-exported: the one time-range parser
from botctl.errors import AuditChainBroken, BotctlError, NotFound, UsageError
from botctl.home import Home

GENESIS = "0" * 64
SEAL_EVENT = "audit.seal_break"
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
        return {"chain": "broken", "problem": self.message, "kind": self.kind, "head_seq": self.head_seq,
                "head_hash": self.head_hash,
                "checkpoint_seq": self.checkpoint[0] if self.checkpoint else None,
                "checkpoint_hash": self.checkpoint[1] if self.checkpoint else None}

    def error(self) -> AuditChainBroken:
        exc = AuditChainBroken(
            f"the audit log's head disagrees with its checkpoint: {self.message}; nothing is written onto it.",
            hint="Keep copies of audit.db and vault.db, see `botctl audit verify`, then record the break with "
                 "`botctl audit seal-break --reason TEXT`.")
        exc.state = self.state()  # type: ignore[attr-defined]
        return exc


def head_problem(conn: sqlite3.Connection | None, cp: tuple[int, str, str] | None, key: bytes, head_seq: int,
                 head_hash: str, *, trusted: tuple | None = None) -> HeadProblem | None:
    """Hold the head (`head_seq`, `head_hash`, read from `conn`) against the checkpoint row `cp`.

    Cheap enough for every append: no walk. Equal seqs compare the hashes; a head past the checkpoint
    (a writer died between its commit and its checkpoint, or another one is about to move it) looks up
    the one record the checkpoint names. `trusted`: a row already known authentic (skips the HMAC).
    """
    if cp is None:
        if head_seq == 0:
            return None
        return HeadProblem("checkpoint_missing", f"{head_seq} records but no checkpoint in vault.db (deleted)",
                           head_seq, head_hash, None, False)
    cp_seq, cp_hash, cp_mac = cp
    if cp != trusted and not hmac.compare_digest(cp_mac, checkpoint_mac(key, cp_seq, cp_hash)):
        return HeadProblem("checkpoint_forged", "the checkpoint in vault.db does not authenticate (edited or forged)",
                           head_seq, head_hash, (cp_seq, cp_hash), False)
    if head_seq < cp_seq:
        return HeadProblem("truncated", f"the log ends at record {head_seq} but the checkpoint says {cp_seq} "
                           "(tail deleted)", head_seq, head_hash, (cp_seq, cp_hash), True)
    if head_seq == cp_seq:
        at: str | None = head_hash
    else:
        row = conn.execute("SELECT hash FROM records WHERE seq = ?", (cp_seq,)).fetchone() if conn else None
        at = row[0] if row else None
    if at != cp_hash:
        what = "differs from the checkpoint (the log was rewritten)" if at else "is missing (the checkpoint names it)"
        return HeadProblem("rewritten", f"record {cp_seq} {what}", head_seq, head_hash, (cp_seq, cp_hash), True)
    return None


def to_record(row: tuple[int, str, str, str]) -> dict[str, Any]:
    seq, body, prev_hash, hash_ = row
    return {"seq": seq, **json.loads(body), "prev_hash": prev_hash, "hash": hash_}


def open_audit_db(home: Home) -> sqlite3.Connection:
    home.ensure()
    conn = store.connect(home.audit_db, durable=True)
    store.migrate(conn, store.AUDIT_MIGRATIONS, what=str(home.audit_db))
    return conn


_HEAD_SQL = "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"


class AuditWriter:
    """Appends records. Safe across threads of one process (one lock) and across processes (SQLite's).

    Fails closed: every append first holds the head against the checkpoint (`head_problem`) inside its
    transaction and raises `AuditChainBroken` instead of chaining onto a broken head.
    """

    def __init__(self, home: Home, key: bytes, vault_conn: sqlite3.Connection) -> None:
        import threading

        self.home = home
        self._key = key
        self._mac = ChainMac(key)
        self._vault = vault_conn
        self._conn = open_audit_db(home)
        self._lock = threading.Lock()
        self._trusted: tuple | None = None  # the last checkpoint row this writer authenticated or wrote

    def close(self) -> None:
        self._conn.close()

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.append_many([record])[0]

    def _check_head(self, seq: int, prev: str) -> tuple[HeadProblem | None, tuple | None]:
        cp = self._vault.execute(_CHECKPOINT_SQL).fetchone()
        problem = head_problem(self._conn, cp, self._key, seq, prev, trusted=self._trusted)
        if problem is None and cp is not None:
            self._trusted = tuple(cp)
        return problem, cp

    def append_many(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append `records` in one transaction; they are durable (fsynced) when this returns."""
        records = list(records)
        bodies = [canonical(r) for r in records]
        if not bodies:
            return []
        with self._lock:
            with store.transaction(self._conn):
                row = self._conn.execute(_HEAD_SQL).fetchone()
                seq, prev = (row[0], row[1]) if row else (0, GENESIS)
                problem, _ = self._check_head(seq, prev)
                if problem is not None:
                    raise problem.error()
                rows = []
                for body in bodies:
                    seq += 1
                    h = self._mac.link(prev, seq, body.encode())
                    rows.append((seq, body, prev, h))
                    prev = h
                self._conn.executemany("INSERT INTO records (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)", rows)
            self._checkpoint(seq, prev)
        return [{"seq": r[0], **rec, "prev_hash": r[2], "hash": r[3]} for r, rec in zip(rows, records, strict=True)]

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
                        raise BotctlError("nothing to seal: the audit log's head matches its checkpoint.",
                                          hint="`botctl audit verify` checks the whole chain.",
                                          code="audit_chain_intact")
                    expected = None
                    if problem.checkpoint is not None:
                        expected = {"seq": problem.checkpoint[0], "hash": problem.checkpoint[1],
                                    "authenticated": problem.checkpoint_authentic}
                    record = make_record(SEAL_EVENT, actor=actor or operator_actor(), reason=problem.kind,
                                         detail={"expected": expected, "found": {"seq": seq, "hash": prev},
                                                 "problem": problem.message, "note": note})
                    body = canonical(record)
                    seq += 1
                    h = self._mac.link(prev, seq, body.encode())
                    self._conn.execute("INSERT INTO records (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)",
                                       (seq, body, prev, h))
                self._checkpoint(seq, h, force=True)
        return {"seq": seq, **record, "prev_hash": prev, "hash": h}

    def _checkpoint(self, seq: int, head: str, *, force: bool = False) -> None:
        # Only moves forward: concurrent writers may commit their checkpoints out of order. A sealed break
        # is the exception: its record may sit below the checkpoint it replaces (a deleted tail).
        sql = (
            "INSERT INTO audit_checkpoint (id, seq, hash, mac, updated_at) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, "
            "updated_at = excluded.updated_at" + ("" if force else " WHERE excluded.seq > audit_checkpoint.seq")
        )
        mac = checkpoint_mac(self._key, seq, head)
        # One statement: inside the caller's vault transaction if there is one, else its own.
        self._vault.execute(sql, (seq, head, mac, store.now_iso()))
        self._trusted = (seq, head, mac)


def head_state(home: Home, key: bytes, vault_conn: sqlite3.Connection) -> dict[str, Any]:
    """Whether a writer would accept the head now (`{"chain": "ok" | "broken", ...}`), without writing."""
    cp = vault_conn.execute(_CHECKPOINT_SQL).fetchone()  # first: records always commit before their checkpoint
    if not home.audit_db.exists():
        problem = head_problem(None, cp, key, 0, GENESIS)
        return problem.state() if problem else {"chain": "ok", "head_seq": 0, "head_hash": GENESIS,
                                                 "checkpoint_seq": None}
    conn = store.connect(home.audit_db, durable=True)
    try:
        row = conn.execute(_HEAD_SQL).fetchone() if store.schema_version(conn) else None
        seq, prev = (row[0], row[1]) if row else (0, GENESIS)
        problem = head_problem(conn, cp, key, seq, prev)
    finally:
        conn.close()
    if problem is not None:
        return problem.state()
    return {"chain": "ok", "head_seq": seq, "head_hash": prev, "checkpoint_seq": cp[0] if cp else None}


# -- reading ---------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class Anchor:
    """A point the chain must still reach: record `seq` with `hash` (from an anchor file or --expect-head)."""

    seq: int
    hash: str
    where: str  # how to name it in a verdict
    authentic: bool = True  # False: an anchor line whose signature is not this vault's
    ts: str | None = None  # when it was signed (anchor lines)


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
    sealed_breaks: list[dict[str, Any]] = field(default_factory=list)
    anchors: int = 0  # anchors the chain was found to reach

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
            "sealed_breaks": self.sealed_breaks,
            "anchors": self.anchors,
        }


def verify(home: Home, key: bytes, vault_conn: sqlite3.Connection, *, anchors: Iterable[Anchor] = ()) -> Verdict:
    """Walk the whole chain, hold its head against the checkpoint in vault.db, then against each anchor.

    Sealed breaks (`audit.seal_break` records) do not make the chain fail: they are part of it, and are
    listed in `sealed_breaks` (and the notes) so the history of the break stays visible.
    """
    anchors = list(anchors)
    cp = vault_conn.execute(_CHECKPOINT_SQL).fetchone()
    if cp is not None and not hmac.compare_digest(cp[2], checkpoint_mac(key, cp[0], cp[1])):
        return Verdict(False, checkpoint_seq=cp[0], first_bad_seq=cp[0],
                       problem="the checkpoint in vault.db does not authenticate (edited or forged)")
    cp_seq = cp[0] if cp else None
    if not home.audit_db.exists():
        if cp is not None:
            return Verdict(False, checkpoint_seq=cp_seq, first_bad_seq=1,
                           problem=f"audit.db is missing but the checkpoint says {cp_seq} records were written")
        return _check_anchors(Verdict(True, notes=["no audit records yet"]), anchors, lambda seq: None)
    conn = store.connect(home.audit_db, durable=True)
    try:
        store.check_version(conn, store.AUDIT_MIGRATIONS, what=str(home.audit_db))
        empty = store.schema_version(conn) == 0
        if empty:
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

        def hash_at(seq: int) -> str | None:
            row = None if empty else conn.execute("SELECT hash FROM records WHERE seq = ?", (seq,)).fetchone()
            return row[0] if row else None

        head_seq = expected - 1
        verdict = Verdict(True, count, head_seq, prev, cp_seq)
        if cp is None:
            if count:
                verdict.notes.append("no checkpoint yet: truncation of the tail cannot be ruled out")
        elif head_seq < cp[0]:
            return Verdict(False, count, head_seq, prev, cp_seq, head_seq + 1,
                           f"the log ends at record {head_seq} but the checkpoint says {cp[0]} (tail truncated)")
        elif cp[0] > 0:
            row_hash = hash_at(cp[0])
            if row_hash is None or not hmac.compare_digest(row_hash, cp[1]):
                return Verdict(False, count, head_seq, prev, cp_seq, cp[0],
                               f"record {cp[0]} differs from the checkpoint (the log was rewritten)")
            if head_seq > cp[0]:
                verdict.notes.append(f"{head_seq - cp[0]} record(s) after the last checkpoint (a write was "
                                     "interrupted)")
        if not empty:
            verdict.sealed_breaks = _sealed_breaks(conn)
        verdict = _check_anchors(verdict, anchors, hash_at)
    finally:
        conn.close()
    for b in verdict.sealed_breaks:
        verdict.notes.append(describe_break(b))
    return verdict


def describe_break(b: dict[str, Any]) -> str:
    """One line for a sealed break: where, when, by whom, what the checkpoint said and what was found."""
    exp, found = b.get("expected") or {}, b.get("found") or {}
    said = (f"checkpoint {exp.get('seq')} ({str(exp.get('hash'))[:12]}…"
            f"{')' if exp.get('authenticated') else ', not authentic)'}" if exp else "no checkpoint")
    return (f"sealed break at record {b['seq']} ({b['ts']}, by {b['by']}): expected {said}, found head "
            f"{found.get('seq')} ({str(found.get('hash'))[:12]}…): {b['problem']}"
            + (f"; note: {b['note']}" if b.get("note") else ""))


def _sealed_breaks(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The `audit.seal_break` records (the index on `event` finds them; the walk has MAC-checked them)."""
    out = []
    for row in conn.execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE event = ? ORDER BY seq", (SEAL_EVENT,)):
        rec = to_record(row)
        d = rec.get("detail") or {}
        actor = rec.get("actor") or {}
        out.append({"seq": rec["seq"], "ts": rec["ts"], "by": f"{actor.get('type')}:{actor.get('sub', '?')}",
                    "kind": rec.get("reason"), "expected": d.get("expected"), "found": d.get("found"),
                    "problem": d.get("problem"), "note": d.get("note")})
    return out


def _check_anchors(verdict: Verdict, anchors: list[Anchor], hash_at: Callable[[int], str | None]) -> Verdict:
    if not verdict.ok:
        return verdict
    for a in anchors:
        if not a.authentic:
            return _failed(verdict, None, f"{a.where} is not signed by this vault's audit key (edited, or from "
                                          "another install)")
        found = hash_at(a.seq) if a.seq <= verdict.head_seq else None
        if found is None or not hmac.compare_digest(found, a.hash):
            sealed = _sealed_loss(verdict.sealed_breaks, a)
            if sealed is not None:
                verdict.notes.append(f"{a.where}: record {a.seq} was lost in the break sealed at record "
                                     f"{sealed['seq']}")
            elif a.seq > verdict.head_seq:
                return _failed(verdict, verdict.head_seq + 1,
                               f"the log ends at record {verdict.head_seq} but {a.where} says record {a.seq} "
                               "existed (rolled back or truncated)")
            else:
                return _failed(verdict, a.seq, f"record {a.seq} differs from {a.where} (the log was rewritten, "
                                               "or rolled back and re-grown)")
        verdict.anchors += 1
    return verdict


def _sealed_loss(breaks: list[dict[str, Any]], a: Anchor) -> dict[str, Any] | None:
    """The sealed break that put on record the loss of the record `a` names, if one did.

    Only a loss the seal states: the anchor predates the seal, its seq lies between the head found and
    the (authentic) checkpoint expected, and an anchor at the checkpoint's own seq carries its hash.
    """
    for b in breaks:
        exp, found = b.get("expected") or {}, b.get("found") or {}
        if not (exp.get("authenticated") and isinstance(exp.get("seq"), int) and isinstance(found.get("seq"), int)):
            continue
        if not (found["seq"] < a.seq <= exp["seq"]) or a.ts is None or a.ts > b["ts"]:
            continue
        if a.seq == exp["seq"] and exp.get("hash") != a.hash:
            continue
        return b
    return None


def _failed(verdict: Verdict, first_bad: int | None, problem: str) -> Verdict:
    verdict.ok, verdict.first_bad_seq, verdict.problem = False, first_bad, problem
    return verdict


# -- anchors ---------------------------------------------------------------------------------------
#
# Ed25519 rather than an HMAC: whoever holds an anchor file (another machine, an auditor, a monitor)
# can be given the public key and check the lines without being able to forge one, whereas an HMAC key
# handed to them would let them forge anchors (and is the chain's own secret). The private key is
# derived from the audit key (HKDF), so nothing new is stored and master-key rotation keeps it.

ANCHOR_INFO = b"botctl/audit/anchor/v1"
ANCHOR_FIELDS = ("v", "seq", "hash", "ts", "key_id", "sig")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return {"key_id": hashlib.sha256(raw).hexdigest()[:16], "public_key_pem": pem}


def make_anchor(home: Home, key: bytes, vault_conn: sqlite3.Connection) -> dict[str, Any]:
    """A signed `{v, seq, hash, ts, key_id, sig}` for the current head (refused on a broken head)."""
    import base64

    state = head_state(home, key, vault_conn)
    if state["chain"] != "ok":
        raise AuditChainBroken(f"not anchoring a broken head: {state['problem']}.",
                               hint="See `botctl audit verify`; `botctl audit seal-break --reason TEXT` records "
                                    "the break.")
    if state["head_seq"] == 0:
        raise NotFound("nothing to anchor yet: the audit log has no records.", hint="Run `botctl init` first.")
    ts = store.now_iso()
    sig = _anchor_signer(key).sign(anchor_message(state["head_seq"], state["head_hash"], ts))
    return {"v": 1, "seq": state["head_seq"], "hash": state["head_hash"], "ts": ts,
            "key_id": anchor_public_key(key)["key_id"], "sig": base64.b64encode(sig).decode()}


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
        raise UsageError(f"cannot read the anchor file {path!r}: {why}.",
                         hint="Give the file `botctl audit anchor --out FILE` wrote.") from None
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
            raise UsageError(f"{where}: not a botctl audit anchor line ({why}).",
                             hint="Anchor files hold the lines `botctl audit anchor` prints, one per line.")
        authentic = a["key_id"] == key_id
        if authentic:
            try:
                public.verify(sig, anchor_message(a["seq"], a["hash"], a["ts"]))
            except InvalidSignature:
                authentic = False
        out.append(Anchor(a["seq"], a["hash"], f"the anchor at {where} ({a['ts']})", authentic, a["ts"]))
    if not out:
        raise UsageError(f"the anchor file {path!r} holds no anchors.",
                         hint="Append one with `botctl audit anchor --out FILE`.")
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
        raise UsageError(f"--expect-head {text!r} is not SEQ:HASH.",
                         hint="e.g. --expect-head 1234:<the 64 hex digits `botctl audit show 1234` prints as hash>.")
    return Anchor(int(seq), head, f"--expect-head {int(seq)}:{head[:12]}…")


def _log():  # noqa: ANN202 - logging.Logger, imported only by the daemon's paths
    import logging

    return logging.getLogger("botctl.audit")


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
        self.batches = 0
        self.records = 0
        self.refused = 0  # records refused because the chain's head disagreed with its checkpoint
        self._broken: dict[str, Any] | None = None  # the last refusal's state, until an append succeeds again
        self._thread = threading.Thread(target=self._run, name="botctl-audit-writer", daemon=True)
        self._thread.start()

    def chain_state(self) -> dict[str, Any]:
        """What the writer last found: {"chain": "ok" | "broken", "refused", ...the break's sides}."""
        return {**(self._broken or {"chain": "ok"}), "refused": self.refused}

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
                if isinstance(exc, AuditChainBroken):
                    self._refused(exc, len(batch))
                for _, fut in batch:
                    fut.set_exception(exc)
            else:
                if self._broken is not None:
                    _log().warning("audit log writable again from record %d (the break was sealed)", written[0]["seq"])
                    self._broken = None
                self.batches += 1
                self.records += len(batch)
                for (_, fut), rec in zip(batch, written, strict=True):
                    fut.set_result(rec)
            if stop:
                return

    def _refused(self, exc: AuditChainBroken, n: int) -> None:
        self.refused += n
        if self._broken is None:  # logged once per break, not once per refused record
            self._broken = dict(getattr(exc, "state", {"chain": "broken", "problem": exc.message}))
            self._broken["since"] = store.now_iso()
            _log().error("audit log refuses new records: %s; every audited request fails until "
                         "`botctl audit seal-break --reason TEXT` records the break", self._broken.get("problem"))

    def close(self) -> None:
        """Commit everything already submitted, then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)
