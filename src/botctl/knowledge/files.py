"""Documents on disk: which files (`collect`), read safely (`check_path`, `read_file`), and each one
parsed and chunked (`parse_document` → ParsedDocument, not yet stored).

Everything added is published to the workspace's visitors: symbolic links are refused unless followed
on purpose, FIFOs and devices are never opened for reading, and with `within` every file must lie
inside that folder (checked on the open descriptor, not only on the name).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from botctl.errors import UsageError
from botctl.knowledge.chunk import Chunk, _sections, _words, chunk_section
from botctl.knowledge.links import BadUrl, check_url, front_matter_url
from botctl.knowledge.parse import parse_html, parse_markdown, parse_text
from botctl.knowledge.text import terms

KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
}
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024


class DocumentError(UsageError):
    """A path that cannot be added: missing, unsupported type, empty, too large, not text."""

    code = "invalid_document"


@dataclass
class ParsedDocument:
    name: str
    source: str
    kind: str
    title: str
    sha256: str
    size: int
    chunks: list[Chunk]
    url: str | None = None  # the help-center page (`url:` in front matter); see links.py

    @property
    def words(self) -> int:
        return sum(_words(c.text) for c in self.chunks)

    @property
    def tokens(self) -> int:
        return sum(c.length for c in self.chunks)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _humanize(stem_name: str) -> str:
    t = re.sub(r"[-_]+", " ", stem_name).strip()
    return t[:1].upper() + t[1:] if t else stem_name


def _link_refused(path: Path | str) -> DocumentError:
    return DocumentError(
        f"{path}: a symbolic link; links are not followed here.",
        hint="Copy the document in place of the link.",
        code="symlink_refused",
    )


def _outside(path: Path | str, label: str) -> DocumentError:
    return DocumentError(f"{path}: outside {label}: only files inside it are read.", code="outside_folder")


def _opened_path(fd: int, path: Path) -> Path:
    """The file an open descriptor really is (the kernel's answer, so a folder swapped for a link between a
    check and the open is seen); falls back to resolving the name where /proc is not available."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(path).resolve()


def check_path(
    path: Path, *, within: Path | None, follow_symlinks: bool = False, label: str | None = None
) -> None:
    """Refuse a path named by the caller that leaves `within` (a resolved folder) or goes through a symbolic
    link below it; with `within` None, refuse only a path that is itself a link. DocumentError otherwise."""
    if within is None:
        if not follow_symlinks and path.is_symlink():
            raise _link_refused(path)
        return
    where = label or str(within)
    try:
        rel = path.relative_to(within)
    except ValueError:
        raise _outside(path, where) from None
    if ".." in rel.parts:
        raise _outside(path, where)
    if not follow_symlinks:
        cur = within
        for part in rel.parts:
            cur = cur / part
            if cur.is_symlink():
                raise _link_refused(cur)
    if not path.resolve().is_relative_to(within):
        raise _outside(path, where)


def read_file(
    path: Path,
    *,
    limit: int,
    follow_symlinks: bool = False,
    within: Path | None = None,
    label: str | None = None,
) -> bytes:
    """A regular file's bytes, opened without following a final symbolic link (O_NOFOLLOW) unless told to,
    without blocking on a FIFO, and checked after opening to lie inside `within` (resolved) when given.
    DocumentError (one line) for a link, a FIFO or device, a file outside, one over `limit` bytes."""
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise _link_refused(path) from None
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DocumentError(f"{path}: not a regular file.")
        if within is not None and not _opened_path(fd, path).is_relative_to(within):
            raise _outside(path, label or str(within))
        too_large = DocumentError(
            f"{path}: too large ({st.st_size // 1024} KiB; the limit is {limit // (1024 * 1024) or 1} MiB).",
            hint="Split it into smaller documents.",
        )
        if st.st_size > limit:
            raise too_large
        parts: list[bytes] = []
        got = 0
        while got <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - got))
            if not block:
                break
            parts.append(block)
            got += len(block)
        if got > limit:
            raise too_large
        return b"".join(parts)
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}.") from None
    finally:
        os.close(fd)


def parse_document(
    path: Path,
    name: str,
    *,
    follow_symlinks: bool = False,
    within: Path | None = None,
    label: str | None = None,
) -> ParsedDocument:
    """Read and chunk one file. DocumentError (one line) for anything that cannot be added: also a symbolic
    link (unless `follow_symlinks`) and, with `within` (a resolved folder), a file that is not inside it."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}.",
            hint="Add Markdown (.md), plain text (.txt) or HTML (.html) files.",
        )
    data = read_file(
        path, limit=MAX_DOCUMENT_BYTES, follow_symlinks=follow_symlinks, within=within, label=label
    )
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{path}: not a text file.", hint="Add Markdown, plain text or HTML files.")
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
    parse = {"markdown": parse_markdown, "html": parse_html, "text": parse_text}[kind]
    meta_title, blocks = parse(text)
    h1 = next((t for k, lvl, t in blocks if k == "h" and lvl == 1), None)
    first_heading = next(((k, lvl) for k, lvl, _ in blocks if k == "h"), None)
    title_from_h1 = h1 is not None and first_heading == ("h", 1)
    title = (h1 if title_from_h1 else None) or meta_title or h1 or _humanize(path.stem)
    chunks: list[Chunk] = []
    for section, paragraphs in _sections(title, blocks, title_from_h1):
        for text_ in chunk_section(paragraphs):
            # The title describes the whole document: it weighs as a heading only where it is the section.
            heading = terms(section) if section != title else []
            chunks.append(Chunk(section, text_, heading, terms(text_)))
    if not any(c.body_terms for c in chunks):
        raise DocumentError(
            f"{path}: no text to index (the file is empty or has only markup).",
            hint="Check the file, or leave it out.",
        )
    url = front_matter_url(text) if kind == "markdown" else None
    if url is not None:
        try:
            check_url(url, f"{path}: url")
        except BadUrl as exc:
            raise DocumentError(str(exc), hint=exc.hint, code="invalid_url") from None
    return ParsedDocument(
        name=name,
        source=str(path.resolve()),
        kind=kind,
        title=title,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        chunks=chunks,
        url=url,
    )


def _walk(top: Path, follow_symlinks: bool) -> Iterable[tuple[str, list[str], list[str]]]:
    """os.walk, sorted and without hidden entries. Not following links, a link met on the way is refused
    (a folder or a file alike); following them, each real folder is entered once (links may loop)."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=follow_symlinks):
        if follow_symlinks:
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if not follow_symlinks and os.path.islink(os.path.join(dirpath, d)):
                raise _link_refused(Path(dirpath, d))
            keep.append(d)
        dirnames[:] = keep
        files = [fn for fn in sorted(filenames) if not fn.startswith(".")]
        for fn in files:
            if not follow_symlinks and os.path.islink(os.path.join(dirpath, fn)):
                raise _link_refused(Path(dirpath, fn))
        yield dirpath, dirnames, files


def collect(
    paths: Sequence[str | os.PathLike[str]],
    *,
    follow_symlinks: bool = False,
    within: Path | None = None,
    label: str | None = None,
) -> tuple[list[tuple[Path, str, Path | None]], list[dict[str, str]]]:
    """(files with their document names and the folder each must stay inside, skipped files). A file is
    named by its file name; files found in a folder by their path relative to it. Folders are walked
    recursively (hidden entries and unsupported types skipped); a named file must exist and be of a
    supported type. Unless `follow_symlinks`, a symbolic link is refused: a named path that is one, and
    any met while walking. With `within` (a resolved folder; `label` names it in errors), every path must
    lie inside it and no link below it is followed, whatever `follow_symlinks` says."""
    files: list[tuple[Path, str, Path | None]] = []
    skipped: list[dict[str, str]] = []
    if not paths:
        raise UsageError("no documents given.", hint="Pass files or folders: Markdown, plain text or HTML.")
    follow = follow_symlinks and within is None
    for raw in paths:
        p = Path(raw).expanduser()
        check_path(p, within=within, follow_symlinks=follow, label=label)
        if p.is_dir():
            root = within if within is not None else (None if follow else p.resolve())
            found = []
            for dirpath, _dirnames, filenames in _walk(p, follow):
                for fn in filenames:
                    f = Path(dirpath, fn)
                    if f.suffix.lower() not in KINDS:
                        skipped.append({"path": str(f), "reason": "unsupported file type"})
                        continue
                    if not f.is_file():
                        raise DocumentError(f"{f}: not a regular file.")
                    found.append((f, f.relative_to(p).as_posix(), root))
            if not found:
                raise DocumentError(f"{p}: no Markdown, text or HTML files in this folder.")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in KINDS:
                raise DocumentError(
                    f"{p}: unsupported file type {p.suffix or '(none)'!r}.",
                    hint="Add Markdown (.md), plain text (.txt) or HTML (.html) files.",
                )
            files.append((p, p.name, within))
        elif p.exists():
            raise DocumentError(f"{p}: not a regular file or folder.")
        else:
            raise DocumentError(f"{p}: no such file or folder.")
    by_name: dict[str, Path] = {}
    for f, name, _root in files:
        if name in by_name and by_name[name].resolve() != f.resolve():
            raise DocumentError(
                f"two files would both be document {name!r}: {by_name[name]} and {f}.",
                hint="Add them in separate commands from different folders, or rename one.",
            )
        by_name[name] = f
    unique = list({name: (f, name, root) for f, name, root in files}.values())
    return unique, skipped
