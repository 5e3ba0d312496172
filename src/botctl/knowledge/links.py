"""Where a document lives on the site's own help center, so a source can link to it.

The operator gives it at `knowledge add`: `--url-base https://help.example.com/articles` (a document's
URL is the base, a slash, and its name without the extension: `returns.md` → `.../articles/returns`,
`billing/vat.md` → `.../articles/billing/vat`), or per document with `url:` in a Markdown file's front
matter (which wins). Only absolute http(s) URLs are kept: they are published to visitors as links.

`cite` gives the citations of an answer each document's title and URL (looked up by document name in
the workspace's own documents), which is what a visitor sees in place of file names.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any
from urllib.parse import quote, urlsplit

from botctl.errors import UsageError

MAX_URL = 2048
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f\\]")


class BadUrl(UsageError):
    code = "invalid_url"


def check_url(value: str, what: str) -> str:
    """`value` if it is an absolute http(s) URL with a host and no credentials; else BadUrl."""
    ok = isinstance(value, str) and 0 < len(value) <= MAX_URL and not _UNSAFE.search(value)
    if ok:
        try:
            u = urlsplit(value)
            ok = u.scheme in ("http", "https") and bool(u.hostname) and not (u.username or u.password)
        except ValueError:
            ok = False
    if not ok:
        shown = str(value)[:60]
        raise BadUrl(
            f"{what} {shown!r} is not an http(s) URL.",
            hint="Give the full address of the help-center page, e.g. https://help.example.com/articles.",
        )
    return value


def front_matter_url(text: str) -> str | None:
    """The `url:` of a Markdown document's front matter (between `---` lines at the top), if any."""
    lines = text.split("\n", 61)
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:60]:
        if line.strip() in ("---", "..."):
            return None
        key, _, value = line.partition(":")
        if key.strip().lower() == "url" and value.strip():
            return value.strip().strip("'\"")
    return None


def document_url(name: str, base: str) -> str:
    """The document's URL under `base`: its name without the extension, each segment percent-encoded."""
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", name)
    return base.rstrip("/") + "/" + "/".join(quote(seg, safe="") for seg in stem.split("/"))


def cite(
    conn: sqlite3.Connection, workspace_id: str, citations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The citations with `title` and `url` (None when the operator gave none) of their documents."""
    names = sorted({str(c.get("document")) for c in citations})
    if not names:
        return citations
    marks = ", ".join("?" for _ in names)
    rows = conn.execute(
        f"SELECT name, title, url FROM knowledge_documents WHERE workspace_id = ? AND name IN ({marks})",
        (workspace_id, *names),
    ).fetchall()
    meta = {name: (title, url) for name, title, url in rows}
    out = []
    for c in citations:
        title, url = meta.get(str(c.get("document")), (None, None))
        out.append({**c, "title": title or c.get("title") or str(c.get("document", "")), "url": url})
    return out
