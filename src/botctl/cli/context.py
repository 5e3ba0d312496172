"""What every command needs from the global options: the home, and a `Session` to work in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from botctl.home import Home
    from botctl.session import Session


def home(ctx: typer.Context) -> Home:
    from botctl.home import Home

    root = ctx.find_root()
    explicit = (root.obj or {}).get("home") if isinstance(root.obj, dict) else None
    return Home.resolve(explicit)


def app(ctx: typer.Context, *, create: bool = True) -> Session:
    from botctl.session import Session

    a = Session(home(ctx), create=create)
    ctx.call_on_close(a.close)
    return a


def group(**kwargs) -> typer.Typer:
    """A command group with botctl's settings: plain help (no rich import), no typer completion flags."""
    from botctl.cli.lazy import SuggestingGroup

    settings = {
        "cls": SuggestingGroup,
        "no_args_is_help": True,
        "add_completion": False,
        "rich_markup_mode": None,
        "pretty_exceptions_enable": False,
        "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100},
    }
    settings.update(kwargs)
    return typer.Typer(**settings)


def _completion_home(ctx: typer.Context | None) -> Home:
    """The home a TAB press is about: --home on the line being completed (before or after the command),
    else BOTCTL_HOME / the default, as the command itself would resolve it."""
    from botctl.home import Home

    explicit = None
    words = os.environ.get("COMP_WORDS", "").split()
    for i, word in enumerate(words):  # the line being completed wins (the root's param holds BOTCTL_HOME too)
        if word == "--home" and i + 1 < len(words):
            explicit = words[i + 1]
        elif word.startswith("--home="):
            explicit = word.split("=", 1)[1]
    if not explicit and ctx is not None:
        explicit = ctx.find_root().params.get("home")
    return Home.resolve(os.path.expanduser(explicit) if explicit else None)


def _query(ctx: typer.Context | None, sql: str, params: tuple, *, audit: bool = False) -> list[str]:
    """Read-only rows for completion (no key needed; silent on any problem, never creates anything)."""
    try:
        import sqlite3

        home = _completion_home(ctx)
        db = home.audit_db if audit else home.vault_db
        if home.database_url_file.exists() or os.environ.get("BOTCTL_DATABASE_URL", "").startswith(
            "postgres"
        ):
            from botctl import store

            conn = store.open_audit_reader(home) if audit else store.open_vault(home, migrate_to_latest=False)
            if conn is None:
                return []
        elif not db.exists():
            return []
        else:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return [r[0] for r in conn.execute(sql, params).fetchall() if r[0] is not None]
        finally:
            conn.close()
    except Exception:
        return []


def _like(incomplete: str) -> str:
    return incomplete.replace("%", "").replace("_", "\\_") + "%"


def complete_workspace(ctx: typer.Context, incomplete: str) -> list[str]:
    """TAB completion of workspace names, in the home the command line names."""
    return _query(
        ctx, "SELECT name FROM workspaces WHERE name LIKE ? ESCAPE '\\' ORDER BY name", (_like(incomplete),)
    )


def complete_document(ctx: typer.Context, incomplete: str) -> list[str]:
    """Document names of the workspace given with -w (or BOTCTL_WORKSPACE)."""
    workspace = ctx.params.get("workspace") or os.environ.get("BOTCTL_WORKSPACE")
    if not workspace:
        return []
    return _query(
        ctx,
        "SELECT d.name FROM knowledge_documents d JOIN workspaces w ON w.id = d.workspace_id "
        "WHERE w.name = ? AND d.name LIKE ? ESCAPE '\\' ORDER BY d.name",
        (workspace, _like(incomplete)),
    )


def complete_event(ctx: typer.Context, incomplete: str) -> list[str]:
    """Audit events this home has recorded (`--event`)."""
    return _query(
        ctx,
        "SELECT DISTINCT event FROM records WHERE event LIKE ? ESCAPE '\\' ORDER BY event",
        (_like(incomplete),),
        audit=True,
    )


def complete_outcome(incomplete: str) -> list[str]:
    from botctl.audit.records import OUTCOMES

    return [o for o in OUTCOMES if o.startswith(incomplete)]


def complete_action(incomplete: str) -> list[str]:
    """CONNECTOR.ACTION names (`actions run stripe.<TAB>`)."""
    from botctl.connectors import registry

    return [
        name
        for c in registry.all_connectors()
        for a in c.actions
        if (name := f"{c.name}.{a.name}").startswith(incomplete)
    ]


def complete_connector(incomplete: str) -> list[str]:
    from botctl.connectors import registry

    return [c.name for c in registry.all_connectors() if c.name.startswith(incomplete)]


def interactive() -> bool:
    """Whether a person can be asked: a terminal on stdin and stderr, not --json, not CI."""
    import os
    import sys

    from botctl.cli import output

    if output.json_mode or os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        return False
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm(question: str, *, yes: bool, command: str) -> None:
    """Every destructive command the same way: --yes, or a yes typed at a terminal; otherwise nothing is
    done (exit 2, `confirmation_required`). `command`: the command line to re-run with --yes."""
    import sys

    from botctl.errors import UsageError

    if yes:
        return
    if interactive():
        sys.stderr.write(f"{question} [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in {"y", "yes"}:
            return
        raise UsageError("not confirmed; nothing was changed.", code="confirmation_required")
    raise UsageError(
        f"{question.rstrip('?')}: that needs a yes, and there is no terminal to ask.",
        hint=f"Re-run with --yes: {command} --yes",
        code="confirmation_required",
    )
