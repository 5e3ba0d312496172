"""verify: walk the whole chain, hold its head against the checkpoint and each anchor; sealed breaks
are listed, not failed."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botctl import store
from botctl.audit.anchors import Anchor
from botctl.audit.chain import _CHECKPOINT_SQL, GENESIS, ChainMac, checkpoint_mac
from botctl.audit.records import _RECORD_COLUMNS, SEAL_EVENT, to_record
from botctl.home import Home


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


def verify(home: Home, key: bytes, vault_conn: Any, *, anchors: Iterable[Anchor] = ()) -> Verdict:
    """Walk the whole chain, hold its head against the checkpoint in vault.db, then against each anchor.

    Sealed breaks (`audit.seal_break` records) do not make the chain fail: they are part of it, and are
    listed in `sealed_breaks` (and the notes) so the history of the break stays visible.
    """
    anchors = list(anchors)
    cp = vault_conn.execute(_CHECKPOINT_SQL).fetchone()
    if cp is not None and not hmac.compare_digest(cp[2], checkpoint_mac(key, cp[0], cp[1])):
        return Verdict(
            False,
            checkpoint_seq=cp[0],
            first_bad_seq=cp[0],
            problem="the checkpoint in vault.db does not authenticate (edited or forged)",
        )
    cp_seq = cp[0] if cp else None
    conn = store.open_audit_reader(home)
    if conn is None:
        if cp is not None:
            return Verdict(
                False,
                checkpoint_seq=cp_seq,
                first_bad_seq=1,
                problem=f"audit.db is missing but the checkpoint says {cp_seq} records were written",
            )
        return _check_anchors(Verdict(True, notes=["no audit records yet"]), anchors, lambda seq: None)
    try:
        rows: Iterable[tuple[int, bytes, str, str]]
        if store.dialect(conn) == "sqlite":
            # body as bytes straight from SQLite: no per-row encode in the hot loop.
            rows = conn.execute("SELECT seq, CAST(body AS BLOB), prev_hash, hash FROM records ORDER BY seq")
        else:
            from botctl.postgres.follow import chain_rows

            rows = chain_rows(conn)
        expected, prev, count = 1, GENESIS, 0
        link = ChainMac(key).link
        for seq, body, prev_hash, hash_ in rows:
            if seq != expected:
                problem = (
                    f"record {expected} is missing (next is {seq})"
                    if seq > expected
                    else f"record {seq} is out of order"
                )
                return Verdict(False, count, expected - 1, prev, cp_seq, expected, problem)
            # A plain comparison is fine here: verify runs offline and answers no one, so there is
            # no timing oracle to protect.
            if prev_hash != prev or link(prev, seq, body) != hash_:
                return Verdict(
                    False,
                    count,
                    seq - 1,
                    prev,
                    cp_seq,
                    seq,
                    f"record {seq} does not match its chain hash (edited, swapped or forged)",
                )
            prev = hash_
            expected += 1
            count += 1

        def hash_at(seq: int) -> str | None:
            row = conn.execute("SELECT hash FROM records WHERE seq = ?", (seq,)).fetchone()
            return row[0] if row else None

        head_seq = expected - 1
        verdict = Verdict(True, count, head_seq, prev, cp_seq)
        if cp is None:
            if count:
                verdict.notes.append("no checkpoint yet: truncation of the tail cannot be ruled out")
        elif head_seq < cp[0]:
            return Verdict(
                False,
                count,
                head_seq,
                prev,
                cp_seq,
                head_seq + 1,
                f"the log ends at record {head_seq} but the checkpoint says {cp[0]} (tail truncated)",
            )
        elif cp[0] > 0:
            row_hash = hash_at(cp[0])
            if row_hash is None or not hmac.compare_digest(row_hash, cp[1]):
                return Verdict(
                    False,
                    count,
                    head_seq,
                    prev,
                    cp_seq,
                    cp[0],
                    f"record {cp[0]} differs from the checkpoint (the log was rewritten)",
                )
            if head_seq > cp[0]:
                verdict.notes.append(
                    f"{head_seq - cp[0]} record(s) after the last checkpoint (a write was interrupted)"
                )
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
    said = (
        f"checkpoint {exp.get('seq')} ({str(exp.get('hash'))[:12]}…"
        f"{')' if exp.get('authenticated') else ', not authentic)'}"
        if exp
        else "no checkpoint"
    )
    return (
        f"sealed break at record {b['seq']} ({b['ts']}, by {b['by']}): expected {said}, found head "
        f"{found.get('seq')} ({str(found.get('hash'))[:12]}…): {b['problem']}"
        + (f"; note: {b['note']}" if b.get("note") else "")
    )


def _sealed_breaks(conn: Any) -> list[dict[str, Any]]:
    """The `audit.seal_break` records (the index on `event` finds them; the walk has MAC-checked them)."""
    out = []
    for row in conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM records WHERE event = ? ORDER BY seq", (SEAL_EVENT,)
    ):
        rec = to_record(row)
        d = rec.get("detail") or {}
        actor = rec.get("actor") or {}
        out.append(
            {
                "seq": rec["seq"],
                "ts": rec["ts"],
                "by": f"{actor.get('type')}:{actor.get('sub', '?')}",
                "kind": rec.get("reason"),
                "expected": d.get("expected"),
                "found": d.get("found"),
                "problem": d.get("problem"),
                "note": d.get("note"),
            }
        )
    return out


def _check_anchors(verdict: Verdict, anchors: list[Anchor], hash_at: Callable[[int], str | None]) -> Verdict:
    if not verdict.ok:
        return verdict
    for a in anchors:
        if not a.authentic:
            return _failed(
                verdict,
                None,
                f"{a.where} is not signed by this vault's audit key (edited, or from another install)",
            )
        found = hash_at(a.seq) if a.seq <= verdict.head_seq else None
        if found is None or not hmac.compare_digest(found, a.hash):
            sealed = _sealed_loss(verdict.sealed_breaks, a)
            if sealed is not None:
                verdict.notes.append(
                    f"{a.where}: record {a.seq} was lost in the break sealed at record {sealed['seq']}"
                )
            elif a.seq > verdict.head_seq:
                return _failed(
                    verdict,
                    verdict.head_seq + 1,
                    f"the log ends at record {verdict.head_seq} but {a.where} says record {a.seq} "
                    "existed (rolled back or truncated)",
                )
            else:
                return _failed(
                    verdict,
                    a.seq,
                    f"record {a.seq} differs from {a.where} (the log was rewritten, "
                    "or rolled back and re-grown)",
                )
        verdict.anchors += 1
    return verdict


def _sealed_loss(breaks: list[dict[str, Any]], a: Anchor) -> dict[str, Any] | None:
    """The sealed break that put on record the loss of the record `a` names, if one did.

    Only a loss the seal states: the anchor predates the seal, its seq lies between the head found and
    the (authentic) checkpoint expected, and an anchor at the checkpoint's own seq carries its hash.
    """
    for b in breaks:
        exp, found = b.get("expected") or {}, b.get("found") or {}
        if not (
            exp.get("authenticated") and isinstance(exp.get("seq"), int) and isinstance(found.get("seq"), int)
        ):
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
