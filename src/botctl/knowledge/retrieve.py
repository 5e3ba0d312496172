"""Retrieval: a question → the workspace's best passages, scored on its own statistics; and the best
sentences of a passage (the excerpts `search` shows, the extracts `answers` builds from).

FTS5's ``bm25()`` picks candidates (an OR of the question's quoted content words, never the visitor's
raw text: no FTS5 operator, column filter or prefix can be injected), scoped to the workspace inside
the MATCH. The candidates are then re-scored with BM25 on the *workspace's own* statistics (chunk
count, average length, the per-workspace document frequencies in ``knowledge_terms``), because
``bm25()`` uses statistics of the whole table, i.e. of every tenant.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botctl import store
from botctl.knowledge import spelling
from botctl.knowledge.chunk import HEADING_WEIGHT, _words
from botctl.knowledge.index import WorkspaceLike, _workspace, _workspace_phrase
from botctl.knowledge.text import (
    MAX_QUESTION_CHARS,
    content_words,
    match_expression,
    query_terms,
    sentence_units,
    stem,
    terms,
)

CANDIDATES = 40

# BM25 parameters (the usual ones) and the grounding thresholds, calibrated on tests/data/knowledge
# (tests/test_knowledge.py::test_thresholds_keep_a_margin_on_the_corpus): the best passage of each of
# the 19 answerable questions has coverage >= 0.67 ("exchange a jacket": the corpus says "an item")
# and strength >= 0.64 ("when will I get my refund": one fairly common word); for the 16 unanswerable
# ones every candidate has coverage <= 0.55 ("store opening hours", "change my delivery address") or
# strength <= 0.34 (the bare word "shipping").
K1 = 1.2
B = 0.75
MIN_COVERAGE = 0.6
MIN_STRENGTH = 0.5
ANSWER_MAX_SENTENCES = 3
ANSWER_MAX_WORDS = 90

FTS_WEIGHTS = "1.0, 3.0, 1.0, 0.0, 0.0, 0.0"  # title, section, body; workspace_id, document_id, terms: 0


@dataclass
class Passage:
    document: str
    section: str
    excerpt: str
    score: float
    title: str = ""
    coverage: float = 0.0
    strength: float = 0.0
    text: str = field(default="", repr=False)
    matched: frozenset[str] = field(default_factory=frozenset, repr=False)
    id: int = field(default=0, repr=False)  # the knowledge_fts rowid (dense.py joins its vectors on it)

    def as_dict(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "title": self.title,
            "section": self.section,
            "excerpt": self.excerpt,
            "score": round(self.score, 4),
        }


@dataclass
class _Query:
    terms: list[tuple[str, str]]
    idf: dict[str, float]
    idf_max: float
    corrected: dict[str, str] = field(default_factory=dict)  # a question word → the stem it was read as

    @property
    def mass(self) -> float:
        return sum(self.idf[s] for _, s in self.terms)


# The top k by FTS5's bm25 inside the workspace (scoped in the MATCH: the index alone answers it, no
# row is read), then only those k rows, checked again: their workspace_id column, and their document's.
# CROSS JOIN fixes the order top -> row (by rowid) -> document (by primary key).
_CANDIDATES_SQL = (
    "WITH top AS (SELECT rowid AS id, bm25(knowledge_fts, " + FTS_WEIGHTS + ") AS rank FROM knowledge_fts "
    "WHERE knowledge_fts MATCH ? ORDER BY rank LIMIT ?) "
    "SELECT d.name, d.title, f.section, f.body, f.terms, f.rowid FROM top CROSS JOIN knowledge_fts AS f ON f.rowid = top.id "
    "CROSS JOIN knowledge_documents AS d ON d.id = f.document_id AND d.workspace_id = ? "
    "WHERE f.workspace_id = ? ORDER BY top.rank"
)


# PostgreSQL: the same candidates from the tsvector of the chunks' stems (GIN index), inside the workspace,
# heading stems weighted as the section column is above; then the same checks on the rows returned.
_PG_CANDIDATES_SQL = (
    "WITH top AS (SELECT id, ts_rank(tsv, q, 1) AS rank FROM knowledge_fts, to_tsquery('simple', ?) AS q "
    "WHERE workspace_id = ? AND tsv @@ q ORDER BY rank DESC, id LIMIT ?) "
    "SELECT d.name, d.title, f.section, f.body, f.terms, f.id FROM top JOIN knowledge_fts AS f ON f.id = top.id "
    "JOIN knowledge_documents AS d ON d.id = f.document_id AND d.workspace_id = f.workspace_id "
    "WHERE f.workspace_id = ? ORDER BY top.rank DESC, top.id"
)


def pg_tsquery(stems: Iterable[str]) -> str:
    """An OR of the stems, each a quoted lexeme (a quote doubled): nothing in them is an operator."""
    return " | ".join("'" + s.replace("\\", "\\\\").replace("'", "''") + "'" for s in dict.fromkeys(stems))


def scoped_match(workspace_id: str, words: Iterable[str]) -> str:
    """The MATCH expression: the workspace's rows only, and the words in the text columns only.

    The workspace is matched by the random part of its id (``ws_<16 hex>`` is indexed as the tokens
    "ws" and the hex; "ws" is in every tenant's rows, so a phrase with it costs position checks on all
    of them); the rows returned are then compared with the whole id in SQL."""
    return f"{_workspace_phrase(workspace_id)} AND {{title section body}} : ({match_expression(words)})"


def _idf(n: float, df: float) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _retrieve(conn: sqlite3.Connection, ws_id: str, question: str, k: int) -> tuple[_Query, list[Passage]]:
    qterms = query_terms(question)
    n, total = conn.execute(
        "SELECT CAST(coalesce(sum(chunks), 0) AS DOUBLE PRECISION), "
        "CAST(coalesce(sum(tokens), 0) AS DOUBLE PRECISION) FROM knowledge_documents "
        "WHERE workspace_id = ?",
        (ws_id,),
    ).fetchone()
    if not qterms or not n:
        return _Query(qterms, {s: 0.0 for _, s in qterms}, 0.0), []
    stems = [s for _, s in qterms]
    marks = ", ".join("?" * len(stems))
    df = dict(
        conn.execute(
            f"SELECT term, df FROM knowledge_terms WHERE workspace_id = ? AND term IN ({marks})",
            (ws_id, *stems),
        ).fetchall()
    )
    # A word no passage of the workspace uses may be a typo of one they do ("shiping"): spelling.py.
    unknown = [(w, s) for w, s in qterms if not df.get(s)]
    fixed = spelling.corrections(conn, ws_id, unknown) if unknown else {}
    if fixed:
        kept: dict[str, str] = {}
        for w, s in qterms:
            if s in fixed:
                s, df_new = fixed[s]
                df[s] = df_new
                w = s  # the stem stands for the word in the MATCH (the index's stemmer leaves it as it is)
            kept.setdefault(s, w)
        qterms = [(w, s) for s, w in kept.items()]
        stems = [s for _, s in qterms]
    q = _Query(qterms, {s: _idf(n, df.get(s, 0)) for s in stems}, _idf(n, 0))
    q.corrected = {w: fixed[s][0] for w, s in unknown if s in fixed}
    try:
        if store.dialect(conn) == "postgresql":
            rows = conn.execute(_PG_CANDIDATES_SQL, (pg_tsquery(stems), ws_id, k, ws_id)).fetchall()
        else:
            rows = conn.execute(
                _CANDIDATES_SQL, (scoped_match(ws_id, (w for w, _ in qterms)), k, ws_id, ws_id)
            ).fetchall()
    except store.OperationalError:  # defensive: the expression is built from quoted words only
        return q, []
    avgdl = (total / n) or 1.0
    parsed = []
    for name, title, section, body, stored, rowid in rows:
        heading, _, text_terms = stored.partition(" | ")
        parsed.append((rowid, name, title, section, body, f" {heading} ", f" {text_terms} "))
    # A pair of adjacent question words that this workspace's passages use as a phrase ("delivery
    # address") names one thing: a passage with only half of it ("email address") is not about it.
    qseq = [stem(w) for w in content_words(question[:MAX_QUESTION_CHARS])]
    phrases = {(a, b) for a, b in zip(qseq, qseq[1:], strict=False) if a != b}
    phrases = {
        ph
        for ph in phrases
        if any(f" {ph[0]} {ph[1]} " in h or f" {ph[0]} {ph[1]} " in t for *_, h, t in parsed)
    }
    out = []
    for rowid, name, title, section, body, heading, text_terms in parsed:
        heading_list, text_list = heading.split(), text_terms.split()
        dl = HEADING_WEIGHT * len(heading_list) + len(text_list)
        tf = {s: text_list.count(s) + HEADING_WEIGHT * heading_list.count(s) for s in stems}
        matched = {s for s in stems if tf[s]}
        for a, b in phrases:
            if f" {a} {b} " not in heading and f" {a} {b} " not in text_terms:
                matched -= {a, b}
        score = sum(q.idf[s] * tf[s] * (K1 + 1) / (tf[s] + K1 * (1 - B + B * dl / avgdl)) for s in matched)
        coverage = sum(q.idf[s] for s in matched) / q.mass if q.mass else 0.0
        strength = score / q.idf_max if q.idf_max else 0.0
        out.append(
            Passage(
                document=name,
                section=section,
                excerpt="",
                score=score,
                title=title,
                coverage=coverage,
                strength=strength,
                text=body,
                matched=frozenset(matched),
                id=rowid,
            )
        )
    # Coordination: a passage that covers more of the question outranks one that repeats part of it.
    out.sort(key=lambda p: (-p.score * p.coverage**2, -p.coverage))
    return q, out


def _best_sentences(
    q: _Query,
    passage: Passage,
    *,
    max_sentences: int = ANSWER_MAX_SENTENCES,
    max_words: int = ANSWER_MAX_WORDS,
) -> tuple[list[str], set[str]]:
    """Extractive: the sentences of the passage that best cover the question, in document order."""
    units = sentence_units(passage.text)
    if not units:
        return [], set()
    unit_terms = [set(terms(s)) for _, s, _ in units]
    stems = {s for _, s in q.terms}
    chosen: list[int] = []
    covered: set[str] = set()
    words = 0
    while len(chosen) < max_sentences:
        best, gain = None, 0.0
        for i, ts in enumerate(unit_terms):
            if i in chosen:
                continue
            g = sum(q.idf[s] for s in (ts & stems) - covered)
            if g > gain + 1e-9:
                best, gain = i, g
        if chosen and (best is None or gain < 0.15 * q.mass):
            # Everything is covered: still take a sentence that on its own covers half of the question
            # (the three shipping speeds after "standard shipping is free over $50").
            own = [
                (sum(q.idf[s] for s in ts & stems), -i) for i, ts in enumerate(unit_terms) if i not in chosen
            ]
            top = max(own, default=(0.0, 0))
            best = -top[1] if top[0] >= 0.5 * q.mass else None
        if best is None:
            break
        w = _words(units[best][1])
        if chosen and words + w > max_words:
            break
        chosen.append(best)
        covered |= unit_terms[best] & stems
        words += w
    if not chosen:  # the question's words are in the headings: the section's opening says what it is about
        chosen = [0]
        if len(units) > 1 and _words(units[0][1]) < 25:
            chosen.append(1)
    picked: list[str] = []
    for i in sorted(chosen):
        _, sentence, intro = units[i]
        if intro and intro not in picked:
            picked.append(intro)
        if sentence not in picked:
            picked.append(sentence)
    return picked, covered


def _join(sentences: list[str]) -> str:
    out = ""
    for s in sentences:
        if not out:
            out = s
        elif s.startswith("- ") or out.endswith(":") or out.rsplit("\n", 1)[-1].startswith("- "):
            out += "\n" + s
        else:
            out += " " + s
    return out


def _excerpt(q: _Query, p: Passage, max_words: int = 45) -> str:
    sentences, _ = _best_sentences(q, p, max_sentences=2, max_words=max_words)
    text = _join(sentences).replace("\n", " ")
    words = text.split()
    return " ".join(words[:max_words]) + (" …" if len(words) > max_words else "")


def search(conn: sqlite3.Connection, ws: WorkspaceLike, query: str, limit: int = 5) -> list[Passage]:
    """The workspace's passages that best match `query`, best first (score: BM25 on this workspace's
    statistics). Passages that match none of the query's content words are never returned."""
    w = _workspace(ws)
    limit = max(1, min(int(limit), 50))
    q, passages = _retrieve(conn, w.id, query, max(CANDIDATES, 4 * limit))
    out = passages[:limit]
    for p in out:
        p.excerpt = _excerpt(q, p)
    return out


def is_grounded(p: Passage) -> bool:
    return p.coverage >= MIN_COVERAGE and p.strength >= MIN_STRENGTH
