"""`execute` runs a plan's changing steps and writes the one summary record; `apply` is load, plan,
the --prune confirmation, execute."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from botctl.errors import BotctlError
from botctl.provision.errors import ConfirmationRequired
from botctl.provision.hosts import HostUse, parse_allow_host
from botctl.provision.loading import load
from botctl.provision.planning import plan
from botctl.provision.steps import Result, Step, destroy_summary

if TYPE_CHECKING:
    from botctl.session import Session


def execute(app: Session, steps: list[Step], *, file: Path, result: Result) -> Result:
    """Run the changing steps in order; a failure is recorded and the rest go on (except the children
    of a workspace that could not be created). One `provision.applied` record when anything happened."""
    broken: set[str] = set()
    for s in steps:
        if s.action == "unchanged" or s.run is None:
            s.status = "unchanged"
            continue
        if s.workspace is not None and s.workspace in broken:
            s.status, s.error = "skipped", f"workspace {s.workspace} could not be created"
            continue
        try:
            s.run()
            s.status = "ok"
        except BotctlError as exc:
            s.status, s.error = "failed", exc.message
            if s.creates_workspace:
                broken.add(s.name)
    _summary(app, steps, file, result)
    return result


def _summary(app: Session, steps: list[Step], file: Path, result: Result) -> None:
    """The `provision.applied` record: counts of what was done, what failed, the workspaces touched."""
    acted = [s for s in steps if s.status in ("ok", "failed")]
    if not acted:
        return
    counts: dict[str, int] = {}
    for s in acted:
        if s.status == "ok":
            counts[s.action] = counts.get(s.action, 0) + 1
    app.audit(
        "provision.applied",
        outcome="error" if result.failed else "ok",
        detail={
            "file": file.name,
            "applied": counts,
            "failed": [f"{s.kind} {s.name}" for s in result.failed],
            "workspaces": sorted({s.workspace for s in acted if s.workspace}),
        },
    )


def apply(
    app_factory: Callable[[bool], Session | None],
    file: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    prune: bool = False,
    reconnect: bool = False,
    secrets_out: str | None = None,
    allow_hosts: Sequence[str] = (),
    confirm_hosts: Callable[[list[HostUse]], bool] | None = None,
    yes: bool = False,
    confirm_destroy: Callable[[list[Step]], bool] | None = None,
) -> Result:
    """Load, plan and (unless dry_run) execute. `app_factory(create)` opens the Session; with
    `create=False` it may return None when there is no vault yet (a dry run on a new home).

    `allow_hosts` (--allow-host values) and `confirm_hosts` decide the hosts the connectors do not fix
    (a dry run only reports them). Deleting anything (--prune) needs `yes` or `confirm_destroy` to say
    yes; otherwise ConfirmationRequired is raised before any step runs."""
    allow = [parse_allow_host(h) for h in allow_hosts]
    spec = load(
        file, secrets_out=secrets_out, allow_hosts=allow, check_hosts=not dry_run, confirm_hosts=confirm_hosts
    )
    app = app_factory(not dry_run)
    result = Result([], dry_run=dry_run, hosts=spec.hosts)
    result.steps = plan(
        app,
        spec,
        prune=prune,
        reconnect=reconnect,
        secrets_out=Path(secrets_out) if secrets_out else None,
        result=result,
    )
    if dry_run or app is None:
        return result
    doomed = result.destructive
    if doomed and not yes and not (confirm_destroy is not None and confirm_destroy(doomed)):
        raise ConfirmationRequired(
            f"--prune would delete {destroy_summary(doomed)}; nothing was changed.",
            hint="Re-run with --yes to confirm (`--dry-run` shows the plan first).",
        )
    return execute(app, result.steps, file=spec.file, result=result)
