"""Stored embeddings: one vector per passage, per workspace, made at `knowledge add`.

``knowledge_vectors`` holds, for each passage (the ``knowledge_fts`` rowid), its workspace, the model
that made it (embed.current_tag(): model and package version), a SHA-256 of the text it was made from
and the vector (float32, little-endian, in a BLOB). `sync` (inside `knowledge.add`'s transaction)
embeds the workspace's passages that have no vector, one from another model, or one made from other
text (a reused rowid), and drops vectors whose passage is gone; so a model upgrade is followed by the
next `knowledge add`, and until then the dense ranking uses only the vectors of the current model.

``knowledge_vector_state`` counts changes per workspace (a generation): `matrix` keeps each
workspace's vectors in memory as one matrix and re-reads them only when the generation moved, so a
question costs one small SELECT and one matrix-vector product. Plain SQL throughout (a BLOB per row, no
extension), so another backend can store the same rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from botctl import store
from botctl.knowledge import embed

if TYPE_CHECKING:
    import numpy as np

BATCH = 256
CACHED_WORKSPACES = 32


class Matrix(NamedTuple):
    ids: list[int]  # passage ids (knowledge_fts rowids), one per row
    vectors: np.ndarray  # (n, dim) float32, unit rows


_cache: OrderedDict[tuple[int, str], tuple[int, str, Matrix]] = OrderedDict()
_cache_lock = threading.Lock()


def passage_text(section: str, body: str) -> str:
    """What a passage's vector is made from: its heading path, then its text."""
    return f"{section}. {body}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _blob(vector: np.ndarray) -> bytes:
    import numpy as np

    return np.asarray(vector, dtype="<f4").tobytes()


def _bump(conn: sqlite3.Connection, ws_id: str) -> None:
    conn.execute(
        "INSERT INTO knowledge_vector_state (workspace_id, generation) VALUES (?, 1) ON CONFLICT "
        "(workspace_id) DO UPDATE SET generation = knowledge_vector_state.generation + 1",
        (ws_id,),
    )


def passage_key(conn: sqlite3.Connection) -> str:
    """The column that identifies a passage: FTS5's rowid, or the id of PostgreSQL's plain table."""
    return "rowid" if store.dialect(conn) == "sqlite" else "id"


def sync(conn: sqlite3.Connection, ws_id: str, match: str) -> int:
    """Bring the workspace's vectors in line with its passages (`match`: the FTS5 expression of the
    workspace's rows). Call inside the transaction that changed them. Returns how many were embedded."""
    if store.dialect(conn) == "sqlite":
        rows = conn.execute(
            "SELECT rowid, section, body FROM knowledge_fts WHERE knowledge_fts MATCH ? AND workspace_id = ?",
            (match, ws_id),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT id, section, body FROM knowledge_fts WHERE workspace_id = ?", (ws_id,)
        ).fetchall()
    tag = embed.current_tag()
    stored = {
        pid: (model, sha)
        for pid, model, sha in conn.execute(
            "SELECT passage_id, model, text_sha256 FROM knowledge_vectors WHERE workspace_id = ?", (ws_id,)
        )
    }
    live = {r[0] for r in rows}
    gone = [(pid,) for pid in stored if pid not in live]
    todo = []
    for pid, section, body in rows:
        text = passage_text(section, body)
        sha = _sha(text)
        if stored.get(pid) != (tag, sha):
            todo.append((pid, text, sha))
    if gone:
        conn.executemany("DELETE FROM knowledge_vectors WHERE passage_id = ?", gone)
    for i in range(0, len(todo), BATCH):
        batch = todo[i : i + BATCH]
        vecs = embed.embed([t for _, t, _ in batch])
        conn.executemany(
            "INSERT INTO knowledge_vectors (passage_id, workspace_id, model, text_sha256, vector) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (passage_id) DO UPDATE SET workspace_id = excluded.workspace_id, "
            "model = excluded.model, text_sha256 = excluded.text_sha256, vector = excluded.vector",
            [(pid, ws_id, tag, sha, _blob(v)) for (pid, _, sha), v in zip(batch, vecs, strict=True)],
        )
    if gone or todo:
        _bump(conn, ws_id)
    return len(todo)


def forget(conn: sqlite3.Connection, passage_ids: list[int], ws_id: str) -> None:
    """Drop the vectors of deleted passages (inside the deleting transaction)."""
    if passage_ids:
        conn.executemany(
            "DELETE FROM knowledge_vectors WHERE passage_id = ? AND workspace_id = ?",
            [(pid, ws_id) for pid in passage_ids],
        )
        _bump(conn, ws_id)


def purge_workspace(conn: sqlite3.Connection, ws_id: str) -> None:
    conn.execute("DELETE FROM knowledge_vectors WHERE workspace_id = ?", (ws_id,))
    conn.execute("DELETE FROM knowledge_vector_state WHERE workspace_id = ?", (ws_id,))


def purge_orphans(conn: sqlite3.Connection) -> None:
    conn.execute(
        "DELETE FROM knowledge_vectors WHERE NOT EXISTS "
        f"(SELECT 1 FROM knowledge_fts AS f WHERE f.{passage_key(conn)} = knowledge_vectors.passage_id)"
    )


def stale(conn: sqlite3.Connection, ws_id: str) -> int:
    """How many of the workspace's vectors were made by another model (`knowledge add` recomputes them)."""
    return conn.execute(
        "SELECT count(*) FROM knowledge_vectors WHERE workspace_id = ? AND model != ?",
        (ws_id, embed.current_tag()),
    ).fetchone()[0]


def matrix(conn: sqlite3.Connection, ws_id: str) -> Matrix:
    """The workspace's vectors of the current model, as one matrix (cached while the generation holds)."""
    import numpy as np

    row = conn.execute(
        "SELECT generation FROM knowledge_vector_state WHERE workspace_id = ?", (ws_id,)
    ).fetchone()
    generation = row[0] if row else 0
    tag = embed.current_tag()
    key = (id(conn), ws_id)
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] == generation and hit[1] == tag:
            _cache.move_to_end(key)
            return hit[2]
    rows = conn.execute(
        "SELECT passage_id, vector FROM knowledge_vectors WHERE workspace_id = ? AND model = ? "
        "ORDER BY passage_id",
        (ws_id, tag),
    ).fetchall()
    dim = embed.dim()
    vecs = (
        np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
        if rows
        else np.zeros((0, dim), dtype=np.float32)
    )
    if sys.byteorder != "little":
        vecs = vecs.astype(np.float32)
    m = Matrix([r[0] for r in rows], vecs)
    with _cache_lock:
        _cache[key] = (generation, tag, m)
        _cache.move_to_end(key)
        while len(_cache) > CACHED_WORKSPACES:
            _cache.popitem(last=False)
    return m
