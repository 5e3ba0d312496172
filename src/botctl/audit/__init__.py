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

Modules: `records` (make_record, scrub, canonical JSON), `chain` (ChainMac, checkpoint MAC, head vs
checkpoint), `writer` (AuditWriter), `committer` (GroupCommitter, the daemon's), `reader` (AuditReader,
Filters), `resolution` (late outcomes and the unknowns they resolve), `verification` (verify, Verdict,
sealed breaks), `anchors` (Ed25519 anchors). Everything callers use is re-exported here, so
`from botctl import audit` / `audit.X` work as before.
"""

from botctl.audit.anchors import (
    ANCHOR_FIELDS,
    ANCHOR_INFO,
    Anchor,
    anchor_message,
    anchor_public_key,
    load_anchors,
    make_anchor,
    parse_expect_head,
)
from botctl.audit.chain import GENESIS, ChainMac, HeadProblem, checkpoint_mac, head_problem, head_state
from botctl.audit.committer import GroupCommitter
from botctl.audit.reader import AuditReader, Filters
from botctl.audit.records import (
    ACTOR_TYPES,
    OUTCOMES,
    SEAL_EVENT,
    SYSTEM_ACTOR,
    canonical,
    make_record,
    operator_actor,
    scrub,
    to_record,
)
from botctl.audit.verification import Verdict, describe_break, verify
from botctl.audit.writer import AuditWriter, open_audit_db
from botctl.durations import parse_since  # re-exported: the one time-range parser

__all__ = [
    "ACTOR_TYPES",
    "ANCHOR_FIELDS",
    "ANCHOR_INFO",
    "GENESIS",
    "OUTCOMES",
    "SEAL_EVENT",
    "SYSTEM_ACTOR",
    "Anchor",
    "AuditReader",
    "AuditWriter",
    "ChainMac",
    "Filters",
    "GroupCommitter",
    "HeadProblem",
    "Verdict",
    "anchor_message",
    "anchor_public_key",
    "canonical",
    "checkpoint_mac",
    "describe_break",
    "head_problem",
    "head_state",
    "load_anchors",
    "make_anchor",
    "make_record",
    "open_audit_db",
    "operator_actor",
    "parse_expect_head",
    "parse_since",
    "scrub",
    "to_record",
    "verify",
]
