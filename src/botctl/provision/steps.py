"""The plan's vocabulary: a `Step` per object (create / update / delete / unchanged, and how it went),
the `Result` of an apply, and the small comparisons and wordings the planners share."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botctl.errors import UsageError
from botctl.provision.hosts import HostUse
from botctl.secret import Secret

ACTIONS = ("create", "update", "delete", "unchanged")


@dataclass
class Step:
    action: str
    kind: str
    name: str
    detail: str = ""
    run: Callable[[], Any] | None = None
    workspace: str | None = None
    creates_workspace: bool = False
    status: str = "pending"  # pending | ok | failed | skipped | unchanged
    error: str | None = None

    @property
    def destructive(self) -> bool:
        """Deletes something (a workspace and its key, a connection, an OAuth app): needs confirmation."""
        return self.action == "delete"

    def as_dict(self) -> dict[str, Any]:
        out = {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "detail": self.detail,
            "destructive": self.destructive,
        }
        if self.status in ("ok", "failed", "skipped"):
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Result:
    steps: list[Step]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    dry_run: bool = False
    hosts: list[HostUse] = field(default_factory=list)

    @property
    def destructive(self) -> list[Step]:
        return [s for s in self.steps if s.destructive]

    @property
    def changed(self) -> bool:
        return not self.dry_run and any(s.status == "ok" and s.action != "unchanged" for s in self.steps)

    @property
    def pending(self) -> int:
        return sum(1 for s in self.steps if s.action != "unchanged")

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "changed": self.changed,
            "plan": [s.as_dict() for s in self.steps],
            "hosts": [h.as_dict() for h in self.hosts],
        }
        if self.dry_run:
            out["dry_run"] = True
        if self.failed:
            out["failed"] = [f"{s.kind} {s.name}" for s in self.failed]
        if self.secrets:
            out["secrets"] = self.secrets
        return out


def destroy_summary(steps: Sequence[Step]) -> str:
    """'workspace globex (its key is destroyed), connection acme/zendesk' for the confirmation."""
    return ", ".join(
        f"{s.kind.replace('_', ' ')} {s.name}" + (" (its key is destroyed)" if s.kind == "workspace" else "")
        for s in steps
    )


def same_secret(a: Secret | None, b: Secret | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return hmac.compare_digest(a.reveal().encode(), b.reveal().encode())


def show(v: Any) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, list | tuple):
        return "[" + " ".join(str(x) for x in v) + "]"
    return str(v)


def kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()))


def fail(message: str) -> Callable[[], Any]:
    """A step's run that refuses (the plan found it cannot be done)."""

    def run() -> Any:
        raise UsageError(message)

    return run
