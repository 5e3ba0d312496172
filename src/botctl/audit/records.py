"""Records: what one audit record holds (`make_record`, secrets scrubbed from `detail`), who wrote it,
and the canonical JSON the chain MACs."""

from __future__ import annotations

import getpass
import json
import os
import re
from typing import Any

from botctl import store

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


def to_record(row: tuple[int, str, str, str]) -> dict[str, Any]:
    seq, body, prev_hash, hash_ = row
    return {"seq": seq, **json.loads(body), "prev_hash": prev_hash, "hash": hash_}
