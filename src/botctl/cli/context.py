"""What every command needs from the global options: the home, and an `App` to work in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from botctl.app import App
    from botctl.home import Home


def home(ctx: typer.Context) -> Home:
    from botctl.home import Home

    root = ctx.find_root()
    explicit = (root.obj or {}).get("home") if isinstance(root.obj, dict) else None
    return Home.resolve(explicit)


def app(ctx: typer.Context, *, create: bool = True) -> App:
    from botctl.app import App

    a = App(home(ctx), create=create)
    ctx.call_on_close(a.close)
    return a


def group(**kwargs) -> typer.Typer:
    """A command group with botctl's settings: plain help (no rich import), no typer completion flags."""
    from botctl.cli.lazy import SuggestingGroup

    settings = {"cls": SuggestingGroup, "no_args_is_help": True, "add_completion": False, "rich_markup_mode": None,
                "pretty_exceptions_enable": False,
                "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 100}}
    settings.update(kwargs)
    return typer.Typer(**settings)


def complete_workspace(incomplete: str) -> list[str]:
    """TAB completion of workspace names (read-only; no key needed; silent on any problem)."""
    try:
        import sqlite3

        from botctl.home import Home

        home = Home.resolve(None)
        db = home.vault_db
        if home.database_url_file.exists() or os.environ.get("BOTCTL_DATABASE_URL", "").startswith("postgres"):
            from botctl import store

            conn = store.open_vault(home, migrate_to_latest=False)
        elif not db.exists():
            return []
        else:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            rows = conn.execute("SELECT name FROM workspaces WHERE name LIKE ? ORDER BY name",
                                (incomplete.replace("%", "") + "%",)).fetchall()
        finally:
            conn.close()
        return [r[0] for r in rows]
    except Exception:
        return []


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
    raise UsageError(f"{question.rstrip('?')}: that needs a yes, and there is no terminal to ask.",
                     hint=f"Re-run with --yes: {command} --yes", code="confirmation_required")
