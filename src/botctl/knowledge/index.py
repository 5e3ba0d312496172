"""The index store: documents, chunks in FTS5, per-workspace term statistics.

Each chunk is a row of ``knowledge_fts`` (FTS5, ``porter unicode61 remove_diacritics 2``) with its
workspace id in an indexed column; ``knowledge_terms`` counts, per workspace, how many chunks contain
each stem (retrieval ranks on the workspace's own statistics). A workspace is whatever has an ``id``
and a ``name`` (WorkspaceLike): this package never looks workspaces up itself.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botctl import store
from botctl.errors import BotctlError, NotFound
from botctl.knowledge import embed, vectors
from botctl.knowledge.files import ParsedDocument, collect, parse_document
from botctl.knowledge.links import check_url, document_url
from botctl.knowledge.text import _TOKEN

if TYPE_CHECKING:
    from botctl.session import Session


class WorkspaceLike(Protocol):
    """What the knowledge package needs of a workspace: its row id (every row and every query is scoped
    by it) and its name (audit records, messages). A `workspaces.Workspace` is one, so is a
    `vault.WorkspaceRef`."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Document:
    name: str
    title: str
    kind: str
    source: str
    sha256: str
    bytes: int
    chunks: int
    words: int
    added_at: str
    updated_at: str
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "name",
                "title",
                "kind",
                "source",
                "sha256",
                "bytes",
                "chunks",
                "words",
                "added_at",
                "updated_at",
                "url",
            )
        }


@dataclass
class AddReport:
    workspace: str
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0  # passages (re)embedded for dense retrieval: new, changed, or made by another model

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "added": self.added,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "chunks": self.chunks,
            "embedded": self.embedded,
        }


_DOC_COLUMNS = "name, title, kind, source, sha256, bytes, chunks, words, added_at, updated_at, url"


def _workspace(ws: WorkspaceLike) -> WorkspaceLike:
    if isinstance(ws, str):
        raise TypeError("pass the workspace (e.g. workspaces.get(conn, name)), not its name")
    return ws


def list_docs(conn: sqlite3.Connection, ws: WorkspaceLike) -> list[Document]:
    w = _workspace(ws)
    return [
        Document(*r)
        for r in conn.execute(
            f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE workspace_id = ? ORDER BY name", (w.id,)
        )
    ]


def _adjust_df(conn: sqlite3.Connection, ws_id: str, chunk_terms: Iterable[set[str]], sign: int) -> None:
    df: Counter[str] = Counter()
    for ts in chunk_terms:
        df.update(ts)
    conn.executemany(
        "INSERT INTO knowledge_terms (workspace_id, term, df) VALUES (?, ?, ?) "
        "ON CONFLICT (workspace_id, term) DO UPDATE SET df = knowledge_terms.df + excluded.df",
        [(ws_id, t, sign * n) for t, n in df.items()],
    )
    if sign < 0:
        conn.execute("DELETE FROM knowledge_terms WHERE workspace_id = ? AND df <= 0", (ws_id,))


def _delete_document(conn: sqlite3.Connection, ws_id: str, doc_id: int) -> int:
    # Found through the index (document_id is an indexed column), then checked exactly.
    if store.dialect(conn) == "postgresql":  # a plain table there: (workspace_id, document_id) is indexed
        rows = conn.execute(
            "DELETE FROM knowledge_fts WHERE workspace_id = ? AND document_id = ? RETURNING id, terms",
            (ws_id, doc_id),
        ).fetchall()
        _adjust_df(conn, ws_id, (set(r[1].split()) - {"|"} for r in rows), -1)
        vectors.forget(conn, [r[0] for r in rows], ws_id)
        return len(rows)
    rows = conn.execute(
        "SELECT rowid, terms FROM knowledge_fts WHERE knowledge_fts MATCH ? AND workspace_id = ? AND document_id = ?",
        (f'{_workspace_phrase(ws_id)} AND document_id : "{int(doc_id)}"', ws_id, doc_id),
    ).fetchall()
    _adjust_df(conn, ws_id, (set(r[1].split()) - {"|"} for r in rows), -1)
    conn.executemany("DELETE FROM knowledge_fts WHERE rowid = ?", [(r[0],) for r in rows])
    vectors.forget(conn, [r[0] for r in rows], ws_id)
    return len(rows)


def _insert_chunks(conn: sqlite3.Connection, ws_id: str, doc_id: int, doc: ParsedDocument) -> None:
    conn.executemany(
        "INSERT INTO knowledge_fts (title, section, body, workspace_id, document_id, terms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(doc.title, c.section, c.text, ws_id, doc_id, c.stored_terms) for c in doc.chunks],
    )
    _adjust_df(conn, ws_id, (c.term_set for c in doc.chunks), +1)


def purge_orphans(conn: sqlite3.Connection) -> int:
    """Drop index rows whose document is gone (a deleted workspace cascades its documents and terms,
    but an FTS5 table cannot take part in a foreign key). Call inside a transaction."""
    n = conn.execute(
        "DELETE FROM knowledge_fts WHERE document_id NOT IN (SELECT id FROM knowledge_documents)"
    ).rowcount
    if n:
        vectors.purge_orphans(conn)
    return n


def purge_workspace(conn: sqlite3.Connection, workspace_id: str) -> int:
    """Delete a workspace's whole index (for `workspaces.delete`, inside its transaction, before the
    workspace row goes; its documents and terms rows follow by ON DELETE CASCADE)."""
    n = conn.execute("DELETE FROM knowledge_fts WHERE workspace_id = ?", (workspace_id,)).rowcount
    conn.execute("DELETE FROM knowledge_terms WHERE workspace_id = ?", (workspace_id,))
    vectors.purge_workspace(conn, workspace_id)
    conn.execute("DELETE FROM knowledge_documents WHERE workspace_id = ?", (workspace_id,))
    return n


def add(
    app: Session,
    ws: WorkspaceLike,
    paths: Sequence[str | os.PathLike[str]],
    *,
    follow_symlinks: bool = False,
    within: Path | None = None,
    label: str | None = None,
    url_base: str | None = None,
) -> AddReport:
    """Add (or replace) documents. Everything is read and parsed first; then one transaction writes all
    of it with one audit record, so a bad file leaves nothing half-added. Unchanged files (same name,
    same SHA-256) are no-ops but for their URL. Symbolic links and `within` as in `collect`. `url_base`:
    the help center the documents are published under (links.document_url); a document's own `url:`
    front matter wins."""
    if url_base is not None:
        check_url(url_base, "--url-base")
    files, skipped = collect(paths, follow_symlinks=follow_symlinks, within=within, label=label)
    parsed = [
        parse_document(f, name, follow_symlinks=follow_symlinks and within is None, within=root, label=label)
        for f, name, root in files
    ]
    conn = app.vault.conn
    w = _workspace(ws)
    report = AddReport(workspace=w.name, skipped=skipped)
    changes: list[dict[str, Any]] = []
    now = store.now_iso()
    with store.transaction(conn):
        purge_orphans(conn)
        for doc in parsed:
            row = conn.execute(
                "SELECT id, sha256 FROM knowledge_documents WHERE workspace_id = ? AND name = ?",
                (w.id, doc.name),
            ).fetchone()
            url = doc.url or (document_url(doc.name, url_base) if url_base else None)
            if row is not None and row[1] == doc.sha256:
                report.unchanged.append(doc.name)
                if url is not None:
                    conn.execute("UPDATE knowledge_documents SET url = ? WHERE id = ?", (url, row[0]))
                continue
            values = (
                doc.title,
                doc.kind,
                doc.source,
                doc.sha256,
                doc.size,
                len(doc.chunks),
                doc.words,
                doc.tokens,
                now,
                url,
            )
            if row is None:
                doc_id = conn.execute(
                    "INSERT INTO knowledge_documents (workspace_id, name, title, kind, source, sha256, bytes, "
                    "chunks, words, tokens, updated_at, url, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (w.id, doc.name, *values, now),
                ).fetchone()[0]
                report.added.append(doc.name)
            else:
                doc_id = row[0]
                _delete_document(conn, w.id, doc_id)
                conn.execute(
                    "UPDATE knowledge_documents SET title = ?, kind = ?, source = ?, sha256 = ?, bytes = ?, "
                    "chunks = ?, words = ?, tokens = ?, updated_at = ?, url = ? WHERE id = ?",
                    (*values, doc_id),
                )
                report.replaced.append(doc.name)
            _insert_chunks(conn, w.id, doc_id, doc)
            report.chunks += len(doc.chunks)
            changes.append(
                {
                    "name": doc.name,
                    "change": "replaced" if row else "added",
                    "kind": doc.kind,
                    "sha256": doc.sha256,
                    "bytes": doc.size,
                    "chunks": len(doc.chunks),
                }
            )
        if embed.enabled():  # also recomputes vectors of unchanged documents made by another model
            try:
                report.embedded = vectors.sync(conn, w.id, _workspace_phrase(w.id))
            except embed.ModelUnavailable as exc:
                raise BotctlError(
                    f"the embedding model could not be loaded: {exc}; nothing was added.",
                    hint="Reinstall botctl's dependencies, or set BOTCTL_KNOWLEDGE_DENSE=0 to "
                    "answer with FTS5 alone.",
                ) from None
        if changes:
            app.audit(
                "knowledge.added",
                workspace=w.name,
                detail={
                    "documents": changes,
                    "added": len(report.added),
                    "replaced": len(report.replaced),
                    "unchanged": len(report.unchanged),
                },
            )
    return report


def remove(app: Session, ws: WorkspaceLike, doc: str) -> Document:
    """Remove one document (by its name, as `list_docs` shows it) and its chunks."""
    conn = app.vault.conn
    w = _workspace(ws)
    with store.transaction(conn):
        row = conn.execute(
            f"SELECT id, {_DOC_COLUMNS} FROM knowledge_documents WHERE workspace_id = ? AND name = ?",
            (w.id, doc),
        ).fetchone()
        if row is None:
            raise NotFound(
                f"no document {doc!r} in workspace {w.name!r}.",
                hint=f"See `botctl knowledge list -w {w.name}`.",
                code="unknown_document",
            )
        removed = Document(*row[1:])
        chunks = _delete_document(conn, w.id, row[0])
        conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (row[0],))
        purge_orphans(conn)
        app.audit(
            "knowledge.removed",
            workspace=w.name,
            detail={"document": removed.name, "sha256": removed.sha256, "chunks": chunks},
        )
    return removed


def _workspace_phrase(workspace_id: str) -> str:
    """The workspace's rows in a MATCH: its id as the index tokenises it, less the "ws" every row shares
    (retrieve.scoped_match scopes every query with it; _delete_document finds a document's rows by it)."""
    parts = _TOKEN.findall(workspace_id.lower())
    if len(parts) > 1 and parts[0] == "ws":
        parts = parts[1:]
    return f'workspace_id : "{" ".join(parts)}"'
