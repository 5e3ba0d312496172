"""Stored embeddings: the vectors of each passage, per workspace, made at `knowledge add`.

``knowledge_vectors`` holds, for each passage (the ``knowledge_fts`` rowid), its workspace, the model
and layout that made it (`tag()`: model, package version, LAYOUT), a SHA-256 of the text it was made
from and its vectors (float32, little-endian, in one BLOB): row 0 is the vector of the passage's own
heading, rows 1.. those of its sentences (text.sentence_units, in order), each embedded as
"heading. sentence". A question is compared with every sentence (the best one counts: a question asks
about one thing, which a whole passage's vector dilutes) and with the heading; the extractive answer
reuses the same sentence vectors, so a question costs one embedding. `sync` (inside `knowledge.add`'s
transaction) embeds the workspace's passages that have no vectors, vectors of another tag, or vectors
made from other text (a reused rowid), and drops those whose passage is gone; so a model upgrade is
followed by the next `knowledge add`, and until then the dense ranking uses only current vectors.

``knowledge_vector_state`` counts changes per workspace (a generation): `matrix` keeps each
workspace's vectors in memory (a `Matrix`) and re-reads them only when the generation moved, so a
question costs one small SELECT and a few matrix-vector products. Plain SQL throughout (a BLOB per row, no
extension), so another backend can store the same rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from botctl import store
from botctl.knowledge import embed
from botctl.knowledge.text import sentence_units

if TYPE_CHECKING:
    import numpy as np

BATCH = 256
CACHED_WORKSPACES = 32
# What a passage's BLOB holds (see above); a new layout makes every stored vector stale, so the next
# `knowledge add` recomputes them (until then the workspace is answered by FTS5 alone).
LAYOUT = "heading+sentences-1"


# Above this many passages a question is first compared with each passage's centroid (the mean of its
# sentence vectors) and heading, and only the PREFILTER best of those (and FTS5's candidates) with
# every one of their sentences: the exhaustive comparison reads every sentence vector (7 per passage in
# bench_knowledge's corpus: 107 MB of float32 at 10,000 passages, ~13 ms here), the prefilter a tenth
# of that. The sentence vectors of such a workspace are kept as float16 (half the memory).
EXHAUSTIVE_UP_TO = 2000
PREFILTER = 256


class Matrix(NamedTuple):
    ids: list[int]  # passage ids (knowledge_fts rowids), one per passage
    row_of: dict[int, int]  # passage id → its index in `ids`
    headings: np.ndarray  # (n, dim) float32 unit rows: each passage's heading
    sentences: np.ndarray  # (m, dim) unit rows (float16 above EXHAUSTIVE_UP_TO): every passage's sentences
    starts: np.ndarray  # (n + 1,) int: where each passage's rows of `sentences` begin, then m (each has >= 1)
    # (n, dim) float32: the mean of each passage's sentences, for the prefilter; None at or under EXHAUSTIVE_UP_TO
    centroids: np.ndarray | None

    def sentence_rows(self, i: int) -> np.ndarray:
        """The sentence vectors of the i-th passage (float32)."""
        import numpy as np

        return self.sentences[int(self.starts[i]) : int(self.starts[i + 1])].astype(np.float32, copy=False)

    def scores(
        self, qv: np.ndarray, heading_weight: float, include: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(best sentence's cosine, heading's cosine) per passage. With a prefilter, passages outside it
        (and outside `include`, indexes of passages that must be scored) get -1 as best sentence."""
        import numpy as np

        heading = self.headings @ qv
        if self.centroids is None:
            return np.maximum.reduceat(self.sentences @ qv, self.starts[:-1]), heading
        coarse = self.centroids @ qv + heading_weight * heading
        pool = np.argpartition(-coarse, PREFILTER - 1)[:PREFILTER]
        pool = np.union1d(pool, np.asarray(include, dtype=np.int64))
        lengths = self.starts[pool + 1] - self.starts[pool]
        local = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        rows = np.repeat(self.starts[pool] - local, lengths) + np.arange(int(lengths.sum()))
        best = np.full(len(self.ids), -1.0, dtype=np.float32)
        best[pool] = np.maximum.reduceat(self.sentences[rows].astype(np.float32) @ qv, local)
        return best, heading


_cache: OrderedDict[tuple[int, str], tuple[int, str, Matrix]] = OrderedDict()
_cache_lock = threading.Lock()


def tag() -> str:
    """What stored vectors are labelled with: the model, its package's version and the layout."""
    return f"{embed.current_tag()}/{LAYOUT}"


def passage_text(section: str, body: str) -> str:
    """What a passage's vectors are made from (its SHA-256 is stored): its heading path, then its text."""
    return f"{section}. {body}"


def passage_texts(section: str, body: str) -> list[str]:
    """The texts embedded for one passage: its own heading, then "heading. sentence" for each sentence
    (the heading alone when the passage has no sentence)."""
    head = section.rsplit(" > ", 1)[-1].strip() or section
    units = [s.removeprefix("- ") for _, s, _ in sentence_units(body)]
    return [head] + ([f"{head}. {u}" for u in units] or [head])


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
    label = tag()
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
        if stored.get(pid) != (label, sha):
            todo.append((pid, passage_texts(section, body), sha))
    if gone:
        conn.executemany("DELETE FROM knowledge_vectors WHERE passage_id = ?", gone)
    i = 0
    while i < len(todo):  # batches of about BATCH texts, whole passages
        batch, n = [], 0
        while i < len(todo) and (not batch or n + len(todo[i][1]) <= BATCH):
            batch.append(todo[i])
            n += len(todo[i][1])
            i += 1
        flat = embed.embed([t for _, texts, _ in batch for t in texts])
        vecs, at = [], 0
        for _, texts, _ in batch:
            vecs.append(flat[at : at + len(texts)])
            at += len(texts)
        conn.executemany(
            "INSERT INTO knowledge_vectors (passage_id, workspace_id, model, text_sha256, vector) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (passage_id) DO UPDATE SET workspace_id = excluded.workspace_id, "
            "model = excluded.model, text_sha256 = excluded.text_sha256, vector = excluded.vector",
            [(pid, ws_id, label, sha, _blob(v)) for (pid, _, sha), v in zip(batch, vecs, strict=True)],
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


def any_current(conn: sqlite3.Connection) -> bool:
    """Some workspace has vectors of the current model and layout (the provider loads the model at
    start only then: a home without them never pays its ~200 MB)."""
    return (
        conn.execute("SELECT 1 FROM knowledge_vectors WHERE model = ? LIMIT 1", (tag(),)).fetchone()
        is not None
    )


def stale(conn: sqlite3.Connection, ws_id: str) -> int:
    """How many of the workspace's vectors were made by another model (`knowledge add` recomputes them)."""
    return conn.execute(
        "SELECT count(*) FROM knowledge_vectors WHERE workspace_id = ? AND model != ?",
        (ws_id, tag()),
    ).fetchone()[0]


def matrix(conn: sqlite3.Connection, ws_id: str) -> Matrix:
    """The workspace's vectors of the current model, as one matrix (cached while the generation holds)."""
    import numpy as np

    row = conn.execute(
        "SELECT generation FROM knowledge_vector_state WHERE workspace_id = ?", (ws_id,)
    ).fetchone()
    generation = row[0] if row else 0
    label = tag()
    key = (id(conn), ws_id)
    with _cache_lock:
        hit = _cache.get(key)
        if hit and hit[0] == generation and hit[1] == label:
            _cache.move_to_end(key)
            return hit[2]
    rows = conn.execute(
        "SELECT passage_id, vector FROM knowledge_vectors WHERE workspace_id = ? AND model = ? "
        "ORDER BY passage_id",
        (ws_id, label),
    ).fetchall()
    dim = embed.dim()
    width = 4 * dim
    ids, heads, sents, starts = [], [], [], []
    at = 0
    for pid, blob in rows:
        blob = bytes(blob)
        if len(blob) < 2 * width or len(blob) % width:  # not this layout: skipped, as if not embedded
            continue
        ids.append(pid)
        heads.append(blob[:width])
        sents.append(blob[width:])
        starts.append(at)
        at += len(blob) // width - 1
    sentences = np.frombuffer(b"".join(sents), dtype="<f4").reshape(at, dim).astype(np.float32, copy=False)
    bounds = np.asarray([*starts, at], dtype=np.int64)
    centroids = None
    if len(ids) > EXHAUSTIVE_UP_TO:
        counts = np.diff(bounds).astype(np.float32)[:, None]
        centroids = np.add.reduceat(sentences, bounds[:-1]) / counts
        centroids /= np.clip(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12, None)
        sentences = sentences.astype(np.float16)
    m = Matrix(
        ids,
        {pid: i for i, pid in enumerate(ids)},
        np.frombuffer(b"".join(heads), dtype="<f4").reshape(len(ids), dim).astype(np.float32, copy=False),
        sentences,
        bounds,
        centroids,
    )
    with _cache_lock:
        _cache[key] = (generation, label, m)
        _cache.move_to_end(key)
        while len(_cache) > CACHED_WORKSPACES:
            _cache.popitem(last=False)
    return m
