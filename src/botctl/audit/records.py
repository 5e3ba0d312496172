"""Records: what one audit record holds (`make_record`, secrets scrubbed from `detail`), who wrote it,
and the canonical JSON the chain MACs."""

from __future__ import annotations

import getpass
import json
import os
import re
from typing import Any

from botctl import store
from botctl.audit.jcs import canonicalize, interoperable

SEAL_EVENT = "audit.seal_break"
# Format 2 (`"v": 2` in the body): the body is RFC 8785 canonical JSON (audit/jcs.py). Records without
# `v` are format 1: Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False). Both
# verify as they were written: the MAC covers the stored bytes (docs/audit-format.md).
FORMAT_VERSION = 2
# pending: an intent recorded before a vendor write (action.started); unknown: a write whose process died
# before its outcome was recorded (botctl/intents.py).
# retried: an attempt that failed in a way botctl repaired and then retried (a 401 answered by a token
# refresh); the retry's own record, next in the chain, carries the action's outcome.
OUTCOMES = ("ok", "denied", "error", "pending", "unknown", "retried")
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
    node: str | None = None,
) -> dict[str, Any]:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    actor = dict(actor or SYSTEM_ACTOR)
    if isinstance(actor.get("email"), str):
        actor["email"] = actor["email"].lower()
    if actor.get("type") not in ACTOR_TYPES:
        raise ValueError(f"actor type must be one of {ACTOR_TYPES}")
    body = {
        "v": FORMAT_VERSION,
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
    if (
        node is not None
    ):  # the node that wrote it, when the home shares PostgreSQL with others (botctl/nodes.py)
        body["node"] = node
    return interoperable(body)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(body: dict[str, Any]) -> str:
    """The exact text the chain MACs (as UTF-8): RFC 8785 for format 2, the legacy rendering for format 1."""
    if body.get("v") == FORMAT_VERSION:
        return canonicalize(body)
    return _CANONICAL.encode(body)


def to_record(row: tuple[int, str, str, str]) -> dict[str, Any]:
    seq, body, prev_hash, hash_ = row
    return {"seq": seq, **json.loads(body), "prev_hash": prev_hash, "hash": hash_}
