"""No comment or document in the repository points outside it.

The design and vendor notes the code relies on live in the repository's own `docs/` (design.md for the
rules, vendors.md for the vendors' API facts). A path that climbs out of the repository into a sibling
directory, or a notes file the repository does not hold (the names are in _NOTES below), is a pointer a
reader of the repository cannot follow. Every `docs/<page>.md` a file names must exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Spelled in pieces so this file does not match itself.
_NOTES = ("DESIGN", "CONNECTORS", "SECURITY", "STYLE")
_OUTSIDE = [
    re.compile(r"\.\./+" + "shared"),
    re.compile(r"/work/" + "shared"),
    re.compile(r"(?<![\w/.-])(?:[\w.-]+/)*(?:" + "|".join(_NOTES) + r")\.md\b"),
]
_DOCS_PAGE = re.compile(r"(?<![\w.-])docs/([\w.-]+\.md)\b")


def repo_files() -> list[Path]:
    """Every file git tracks or would add (untracked but not ignored), text only."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    files = []
    for name in out.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        files.append(path)
    return files


def outside_references(text: str) -> list[str]:
    """The references in `text` to something outside the repository, or to notes it does not hold."""
    found = []
    for pattern in _OUTSIDE:
        found += [m.group(0) for m in pattern.finditer(text)]
    return found


def missing_docs_pages(text: str) -> list[str]:
    return [m.group(0) for m in _DOCS_PAGE.finditer(text) if not (ROOT / "docs" / m.group(1)).is_file()]


def test_the_scanner_sees_what_it_is_for() -> None:
    notes = "CONNECTORS" + ".md"
    assert outside_references(f"see {notes} §7.1") == [notes]
    assert outside_references(f"(../shared/{notes})") != []
    assert outside_references("the vendor facts (docs/vendors.md §7.1), PORT/callback.md") == []
    assert missing_docs_pages("docs/vendors.md and docs/no-such-page.md") == ["docs/no-such-page.md"]


def test_no_file_points_outside_the_repository() -> None:
    offenders = []
    for path in repo_files():
        if path == Path(__file__).resolve():
            continue
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for ref in outside_references(line) + missing_docs_pages(line):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {ref}")
    assert not offenders, (
        "these point outside the repository or at a docs/ page that does not exist; write what they "
        "rely on in docs/ (design.md, vendors.md) and point there:\n  " + "\n  ".join(offenders)
    )
