"""One renderer for every command: data to stdout, status and errors to stderr.

* ``--json``: one JSON document (or NDJSON for streams) on stdout, nothing else there.
* a terminal: a rich table (rich imported only here, only then), markup off so user data is never
  read as markup.
* a pipe: plain tab-separated lines, untruncated (like gh), so `cut`/`awk` work.

Everything shown to a person goes through `escape`: audit records carry text from anonymous visitors
(action names, token claims), and a terminal must never receive their control characters (ESC, CR,
OSC, C1) or bidi overrides as such. They are shown as visible escapes (`\\x1b`, `\\r`, `\\u202e`); in
TSV a tab or newline inside a cell is `\\t` / `\\n`, so no cell can forge a column or a row. JSON stays
JSON: `json` escapes C0, and `emit_json` escapes DEL, C1 and bidi characters as `\\u` escapes too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

json_mode = False  # set by commands given --json, so errors are also reported as JSON on stdout
quiet = False  # --quiet / BOTCTL_QUIET: no status lines (data and errors still print)
header = False  # --header: tab-separated output starts with the column names


def use_json(flag: bool) -> bool:
    global json_mode
    json_mode = flag
    return flag


# Bidi embeddings/overrides/isolates and marks, and the Unicode line/paragraph separators.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)
_tables: dict[str, dict[int, str]] = {}


def _table(kind: str) -> dict[int, str]:
    t = _tables.get(kind)
    if t is None:
        if kind == "json":  # what json.dumps(ensure_ascii=False) leaves raw: DEL, C1, bidi
            t = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *_BIDI)}
        else:
            t = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
            t.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
            t.update({c: f"\\u{c:04x}" for c in _BIDI})
            if kind == "lines":
                del t[0x0A]
        _tables[kind] = t
    return t


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """`text` safe for a terminal: C0/C1 controls, DEL and bidi controls as visible escapes.

    Not reversible (a literal backslash is left alone): it is for display; `--json` is the exact form.
    """
    if text.isascii() and text.isprintable():
        return text
    return text.translate(_table("lines" if keep_newlines else "text"))


def _default(o: Any) -> Any:
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if isinstance(o, tuple | set):
        return list(o)
    return str(o)


def dumps(data: Any, **kwargs: Any) -> str:
    """json.dumps for output: UTF-8 text, but DEL, C1 and bidi controls \\u-escaped (still the same JSON)."""
    text = json.dumps(data, default=_default, ensure_ascii=False, **kwargs)
    if text.isascii() and "\x7f" not in text:
        return text
    return text.translate(_table("json"))


def emit_json(data: Any, *, stream: bool = False) -> None:
    if stream:
        sys.stdout.write(dumps(data, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    else:
        sys.stdout.write(dumps(data, indent=2) + "\n")


def status(message: str) -> None:
    """A human status line (stderr, so stdout stays clean data); silent under --quiet."""
    if not quiet:
        sys.stderr.write(escape(message, keep_newlines=True) + "\n")


def warn(message: str) -> None:
    sys.stderr.write(f"{paint('warning:', 'warn', sys.stderr)} {escape(message, keep_newlines=True)}\n")


def _is_tty() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


# Colour carries meaning only: what went wrong (red) and what needs a look (yellow). Never when the
# stream is not a terminal, TERM=dumb, or NO_COLOR is set (https://no-color.org).
_ANSI = {"bad": "\x1b[31m", "warn": "\x1b[33m", "good": "\x1b[32m"}
MEANING = {
    "denied": "bad",
    "error": "bad",
    "failed": "bad",
    "FAIL": "bad",
    "broken": "bad",
    "unknown": "warn",
    "pending": "warn",
    "needs_reauth": "warn",
    "WARN": "warn",
    "retried": "warn",
}
COLOURED_COLUMNS = ("OUTCOME", "STATUS")


def colour_on(stream) -> bool:  # noqa: ANN001
    return stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("NO_COLOR")


def paint(text: str, meaning: str | None, stream=None) -> str:  # noqa: ANN001
    """`text` in the colour of its meaning ("bad", "warn", "good") when `stream` shows colour."""
    if meaning is None or meaning not in _ANSI or not colour_on(stream or sys.stdout):
        return text
    return f"{_ANSI[meaning]}{text}\x1b[0m"


def cell(value: Any) -> str:
    """One value as one escaped line of text (see `escape`)."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value)) or "-"
    if isinstance(value, dict):
        return escape(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return escape(str(value))


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    if not rows:
        status(empty)
        return
    if not _is_tty():
        if header:
            sys.stdout.write("\t".join(columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(cell(v) for v in row) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=escape(title) if title else None, show_edge=False, header_style="bold", pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    styles = {"bad": "red", "warn": "yellow"}
    coloured = {i for i, c in enumerate(columns) if c in COLOURED_COLUMNS} if colour_on(sys.stdout) else set()
    for row in rows:
        cells = [cell(v) for v in row]
        t.add_row(
            *(
                Text(c, style=styles.get(MEANING.get(c, ""), "")) if i in coloured else c
                for i, c in enumerate(cells)
            )
        )
    Console(markup=False, highlight=False, emoji=False, no_color=not colour_on(sys.stdout)).print(t)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """`key: value` lines for `show` commands."""
    width = max(len(k) for k, _ in pairs) if pairs else 0
    for k, v in pairs:
        sys.stdout.write(f"{escape(k).ljust(width)}  {cell(v)}\n")


def error(
    message: str, hint: str | None = None, *, code: str | None = None, as_json: bool | None = None
) -> None:
    as_json = json_mode if as_json is None else as_json
    sys.stderr.write(f"{paint('error:', 'bad', sys.stderr)} {escape(message, keep_newlines=True)}\n")
    if hint:
        sys.stderr.write(f"hint: {escape(hint, keep_newlines=True)}\n")
    if as_json:
        emit_json({"error": {"code": code or "error", "message": message, "hint": hint}})
