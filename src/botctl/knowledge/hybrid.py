"""Hybrid retrieval: the FTS5 ranking and the embedding model's ranking, fused; then grounded or not.

1. FTS5 candidates, re-scored on the workspace's own statistics (retrieve._retrieve: BM25, coverage,
   strength), in their order.
2. The question's vector (embed.py) against the workspace's stored vectors (vectors.py): each
   passage's *cosine* is that of its best sentence (embedded as "heading. sentence"), its *heading*
   that of its own heading; the DENSE_CANDIDATES passages with the best ``cosine + heading_weight *
   heading``, in that order.
3. Fusion of the two: every passage of either list gets ``fused = cosine + heading_weight * heading +
   coverage_weight * coverage + strength_weight * min(strength, 1.5)`` (coverage and strength:
   retrieve.py's idf-weighted share of the question's words and BM25 strength, 0 for a passage FTS5
   did not find), best first. Reciprocal rank fusion was measured too and ranked
   worse (it gives FTS5's noisy order on paraphrases as much say as the model's): see
   docs/knowledge-retrieval.md.
4. Grounding, on the best passage: grounded when ``fused`` reaches the model's threshold and the
   question's words are not all unknown to this workspace (see `decide`). The weights and the
   threshold are calibrated per model on bench/knowledge_eval (how: docs/knowledge-retrieval.md).

With dense retrieval off (``BOTCTL_KNOWLEDGE_DENSE=0``, the model not installed, or a workspace with no
vector of the current model yet) this is exactly the FTS5-only behaviour: the FTS5 order and
retrieve.is_grounded. Every row read is scoped to the workspace (by its id, and the join on its
documents), as in retrieve.py.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from botctl import store
from botctl.knowledge import embed, vectors
from botctl.knowledge.chunk import _words
from botctl.knowledge.index import WorkspaceLike, _workspace
from botctl.knowledge.retrieve import (
    ANSWER_MAX_SENTENCES,
    ANSWER_MAX_WORDS,
    CANDIDATES,
    Passage,
    _excerpt,
    _Query,
    _retrieve,
    is_grounded,
)
from botctl.knowledge.retrieve import search as _fts_search
from botctl.knowledge.text import MAX_QUESTION_CHARS, sentence_units, terms

DENSE_CANDIDATES = 20
STRENGTH_CAP = 1.5
# (heading weight, coverage weight, strength weight, threshold) per model, calibrated on two corpora
# of bench/knowledge_eval (store, saas) and checked on the third (clinic): docs/knowledge-retrieval.md.
CALIBRATION = {
    "all-MiniLM-L6-v2-int8": (0.25, 0.3, 0.2, 0.85),
    "wordllama-l2_supercat-256": (0.0, 0.3, 0.1, 0.63),
}

# A passage the model found, by its id, checked again: its own workspace_id, and its document's. On
# SQLite, CROSS JOIN fixes the order passage (by rowid) → document (by primary key): left to itself the
# planner walks every document of the workspace and probes FTS5 once per document (1.6 ms a passage at
# 10,000 passages, against 0.02 ms).
_ROWS_SQL = {
    "sqlite": (
        "SELECT d.name, d.title, f.section, f.body FROM knowledge_fts AS f "
        "CROSS JOIN knowledge_documents AS d ON d.id = f.document_id AND d.workspace_id = ? "
        "WHERE f.rowid = ? AND f.workspace_id = ?"
    ),
    "postgresql": (
        "SELECT d.name, d.title, f.section, f.body FROM knowledge_fts AS f "
        "JOIN knowledge_documents AS d ON d.id = f.document_id AND d.workspace_id = ? "
        "WHERE f.id = ? AND f.workspace_id = ?"
    ),
}


@dataclass
class Ranked:
    passage: Passage
    fts_rank: int | None = None  # 1-based, None: not an FTS5 candidate
    dense_rank: int | None = None  # 1-based, None: not among the DENSE_CANDIDATES nearest
    cosine: float = 0.0  # the question against the passage's best sentence
    heading: float = 0.0  # the question against the passage's heading
    fused: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        p = self.passage
        return {
            "document": p.document,
            "section": p.section,
            "fts_rank": self.fts_rank,
            "bm25": round(p.score, 4),
            "coverage": round(p.coverage, 4),
            "strength": round(p.strength, 4),
            "dense_rank": self.dense_rank,
            "cosine": round(self.cosine, 4),
            "heading": round(self.heading, 4),
            "fused": round(self.fused, 5),
        }


@dataclass
class Decision:
    dense: bool  # the embedding model took part
    grounded: bool
    reason: str
    score: float = 0.0  # the best passage's fused score
    threshold: float = 0.0
    weights: tuple[float, float, float] = (0.0, 0.0, 0.0)  # heading, coverage, strength
    ranked: list[Ranked] = field(default_factory=list)
    note: str = ""
    question_vector: Any = field(default=None, repr=False)  # numpy row, for picking sentences
    matrix: Any = field(default=None, repr=False)  # the workspace's vectors.Matrix, for picking sentences
    corrected: dict[str, str] = field(default_factory=dict)  # typos read as the workspace's words

    def as_dict(self) -> dict[str, Any]:
        return {
            "dense": self.dense,
            "grounded": self.grounded,
            "reason": self.reason,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "heading_weight": self.weights[0],
            "coverage_weight": self.weights[1],
            "strength_weight": self.weights[2],
            "note": self.note,
            "corrected": dict(self.corrected),
            "model": embed.current_tag() if self.dense else None,
            "ranking": [r.as_dict() for r in self.ranked],
        }


def calibration() -> tuple[float, float, float, float]:
    """(heading weight, coverage weight, strength weight, threshold) of the model in use."""
    return CALIBRATION[embed.model().name]


def fused(r: Ranked, hw: float, cw: float, sw: float) -> float:
    p = r.passage
    return r.cosine + hw * r.heading + cw * p.coverage + sw * min(p.strength, STRENGTH_CAP)


def decide(q: _Query, best: Ranked, threshold: float) -> tuple[bool, str]:
    """(grounded, why) for the best passage."""
    if best.passage.coverage == 0 and all(q.idf[s] >= q.idf_max - 1e-9 for _, s in q.terms):
        return False, "none of the question's words is in this workspace's documents"
    if best.fused >= threshold:
        return True, f"best fused score {best.fused:.3f} >= threshold {threshold}"
    return False, f"best fused score {best.fused:.3f} < threshold {threshold}"


def _fts_only(q: _Query, fts: list[Passage], note: str) -> tuple[_Query, list[Passage], Decision]:
    ranked = [Ranked(p, fts_rank=i) for i, p in enumerate(fts, 1)]
    good = [p for p in fts if is_grounded(p)]
    if good:
        best = good[0]
        why = f"FTS5 only: coverage {best.coverage:.2f} and strength {best.strength:.2f} over the thresholds"
    else:
        why = "FTS5 only: no passage over the coverage and strength thresholds"
    return q, good, Decision(dense=False, grounded=bool(good), reason=why, ranked=ranked, note=note)


def retrieve(
    conn: sqlite3.Connection, ws_id: str, question: str, k: int
) -> tuple[_Query, list[Passage], Decision]:
    """(query, the passages an answer may use — best first, empty when not grounded —, the decision with
    both rankings and the fused scores)."""
    q, fts = _retrieve(conn, ws_id, question, k)
    q, good, d = _decide(conn, ws_id, question, q, fts)
    d.corrected = q.corrected
    return q, good, d


def _decide(
    conn: sqlite3.Connection, ws_id: str, question: str, q: _Query, fts: list[Passage]
) -> tuple[_Query, list[Passage], Decision]:
    if not q.terms:
        return q, [], Decision(dense=False, grounded=False, reason="the question has no content words")
    if not embed.enabled():
        return _fts_only(
            q,
            fts,
            "dense retrieval is off"
            if embed.available()
            else "dense retrieval is off: the embedding model's package is not installed",
        )
    m = vectors.matrix(conn, ws_id)
    if not m.ids:
        return _fts_only(
            q,
            fts,
            "this workspace has no vectors of the current model yet: `botctl knowledge add` computes them",
        )
    import numpy as np

    try:
        qv = embed.question_vector(question[:MAX_QUESTION_CHARS])
    except Exception:  # a broken install of the model: answer as with dense retrieval off
        return _fts_only(q, fts, "the embedding model could not be loaded")
    hw, cw, sw, threshold = calibration()
    best_sentence, heading = m.scores(qv, hw, [m.row_of[p.id] for p in fts if p.id in m.row_of])
    dense = best_sentence + hw * heading
    n = min(DENSE_CANDIDATES, len(m.ids))
    top = np.argpartition(-dense, n - 1)[:n]
    top = top[np.argsort(-dense[top], kind="stable")]
    by_id: dict[int, Ranked] = {}
    for i, p in enumerate(fts, 1):
        by_id[p.id] = Ranked(p, fts_rank=i)
    row_of = m.row_of
    rows_sql = _ROWS_SQL[store.dialect(conn)]
    for rank, j in enumerate(top.tolist(), 1):
        pid = m.ids[j]
        r = by_id.get(pid)
        if r is None:
            row = conn.execute(rows_sql, (ws_id, pid, ws_id)).fetchone()
            if row is None:  # gone since the vectors were read, or not this workspace's
                continue
            name, title, section, body = row
            r = by_id[pid] = Ranked(
                Passage(document=name, section=section, excerpt="", score=0.0, title=title, text=body, id=pid)
            )
        r.dense_rank = rank
    for r in by_id.values():
        j = row_of.get(r.passage.id)
        if j is not None:
            r.cosine, r.heading = float(best_sentence[j]), float(heading[j])
        r.fused = fused(r, hw, cw, sw)
    ranked = sorted(by_id.values(), key=lambda r: (-r.fused, -r.cosine))
    grounded, why = decide(q, ranked[0], threshold)
    d = Decision(
        dense=True,
        grounded=grounded,
        reason=why,
        score=ranked[0].fused,
        threshold=threshold,
        weights=(hw, cw, sw),
        ranked=ranked,
        question_vector=qv,
        matrix=m,
    )
    if not grounded:
        return q, [], d
    # The passages an answer may draw on: the best, and the next ones over the threshold too.
    return q, [r.passage for r in ranked[:3] if r.fused >= threshold], d


# Picking the sentences that answer: each sentence of the passage scored by its cosine to the question
# plus LEXICAL_WEIGHT x the share of the question's (idf-weighted) words it holds; the best one, and
# the others within SENTENCE_MARGIN of it, in document order.
LEXICAL_WEIGHT = 0.05
SENTENCE_MARGIN = 0.12


def best_sentences(
    q: _Query,
    passage: Passage,
    question_vector: Any,
    matrix: vectors.Matrix | None = None,
    *,
    max_sentences: int = ANSWER_MAX_SENTENCES,
    max_words: int = ANSWER_MAX_WORDS,
) -> tuple[list[str], set[str]]:
    """The sentences of `passage` that answer the question (extractive), and the question stems they hold.
    "Can I get my money back?" on a passage about refunds → the sentence that says how the refund is made,
    not the one that happens to hold the word "money"."""
    units = sentence_units(passage.text)
    if not units:
        return [], set()
    stems = {s for _, s in q.terms}
    unit_terms = [set(terms(s)) & stems for _, s, _ in units]
    lexical = [sum(q.idf[s] for s in ts) / q.mass if q.mass else 0.0 for ts in unit_terms]
    stored = None
    if matrix is not None and passage.id in matrix.row_of:  # the vectors made at `knowledge add`
        stored = matrix.sentence_rows(matrix.row_of[passage.id])
    if stored is None or len(stored) != len(units):  # made from other text: embed them now, the same way
        stored = embed.embed(vectors.passage_texts(passage.section, passage.text)[1:])
    cosines = stored @ question_vector
    scores = [float(c) + LEXICAL_WEIGHT * lx for c, lx in zip(cosines, lexical, strict=True)]
    order = sorted(range(len(units)), key=lambda i: -scores[i])
    chosen = [order[0]]
    words = _words(units[order[0]][1])
    for i in order[1 : len(order)]:
        if len(chosen) >= max_sentences or scores[i] < scores[order[0]] - SENTENCE_MARGIN:
            break
        if words + _words(units[i][1]) > max_words:
            break
        chosen.append(i)
        words += _words(units[i][1])
    picked: list[str] = []
    covered: set[str] = set()
    for i in sorted(chosen):
        _, sentence, intro = units[i]
        if intro and intro not in picked:
            picked.append(intro)
        if sentence not in picked:
            picked.append(sentence)
        covered |= unit_terms[i]
    return picked, covered


def search(conn: sqlite3.Connection, ws: WorkspaceLike, query: str, limit: int = 5) -> list[Passage]:
    """The workspace's passages that best match `query`, best first. With dense retrieval on: in fused
    order (score: the fused score), those FTS5 found and those the model puts over the grounding
    threshold (so a query about nothing in the documents still finds nothing); otherwise retrieve.search."""
    w = _workspace(ws)
    if not embed.enabled():
        return _fts_search(conn, w, query, limit)
    limit = max(1, min(int(limit), 50))
    q, _, d = retrieve(conn, w.id, query, max(CANDIDATES, 4 * limit))
    if not d.dense:
        return _fts_search(conn, w, query, limit)
    out = []
    for r in d.ranked:
        if r.fts_rank is None and r.fused < d.threshold:
            continue
        r.passage.score = r.fused
        out.append(r.passage)
        if len(out) >= limit:
            break
    for p in out:
        p.excerpt = _excerpt(q, p)
    return out
