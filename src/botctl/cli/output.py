"""One renderer for every command: data to stdout, status and errors to stderr.

* ``--json``: one JSON document (or NDJSON for streams) on stdout, nothing else there.
* a terminal: a rich table (rich imported only here, only then), markup off so user data is never
  read as markup.
* a pipe: plain tab-separated lines, untruncated (like gh), so `cut`/`awk` work.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

json_mode = False  # set by commands given --json, so errors are also reported as JSON on stdout
quiet = False  # --quiet / BOTCTL_QUIET: no status lines (data and errors still print)


def use_json(flag: bool) -> bool:
    global json_mode
    json_mode = flag
    return flag


def _default(o: Any) -> Any:
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if isinstance(o, tuple | set):
        return list(o)
    return str(o)


def emit_json(data: Any, *, stream: bool = False) -> None:
    if stream:
        sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    else:
        sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False, indent=2) + "\n")


def status(message: str) -> None:
    """A human status line (stderr, so stdout stays clean data); silent under --quiet."""
    if not quiet:
        sys.stderr.write(message + "\n")


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _is_tty() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
          empty: str = "nothing to show") -> None:
    if not rows:
        status(empty)
        return
    if not _is_tty():
        for row in rows:
            sys.stdout.write("\t".join(cell(v).replace("\t", " ").replace("\n", " ") for v in row) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_edge=False, header_style="bold", pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    Console(markup=False, highlight=False, emoji=False).print(t)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """`key: value` lines for `show` commands."""
    width = max(len(k) for k, _ in pairs) if pairs else 0
    for k, v in pairs:
        sys.stdout.write(f"{k.ljust(width)}  {cell(v)}\n")


def error(message: str, hint: str | None = None, *, code: str | None = None, as_json: bool | None = None) -> None:
    as_json = json_mode if as_json is None else as_json
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    if as_json:
        emit_json({"error": {"code": code or "error", "message": message, "hint": hint}})
