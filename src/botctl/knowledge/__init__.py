"""Knowledge: each workspace's own documents, an FTS5 index, and answers grounded in them.

Documents (Markdown, plain text, HTML) are split along their structure: headings make sections (the
heading path, e.g. ``Refunds > Timing``, is what a citation names), blank lines make paragraphs, and a
section longer than ~250 words is cut at paragraph (then sentence) boundaries into chunks of 80-250
words. Chunks never span two sections, so a short FAQ entry stays one small chunk that cites the
right heading. Each chunk is a row of ``knowledge_fts`` (FTS5, ``porter unicode61 remove_diacritics 2``)
with its workspace id in an indexed column: every query is scoped by it inside the MATCH (so ranking
only ever sees the workspace's rows), and the rows it returns are checked again in SQL (their
``workspace_id``, and a join on ``knowledge_documents`` of the same workspace), so no query returns
another workspace's passage.

Ranking. FTS5's ``bm25()`` picks candidates (an OR of the question's quoted content words, never the
visitor's raw text: no FTS5 operator, column filter or prefix can be injected). The candidates are
then re-scored with BM25 on the *workspace's own* statistics (chunk count, average length and the
per-workspace document frequencies in ``knowledge_terms``), because ``bm25()`` uses statistics of the
whole table, i.e. of every tenant: one tenant's documents must not move another's answers.

Grounding. An answer is the best sentences of the best passages (extractive), with a citation
(document + section) for each passage used. It is given only when the best passage

* covers at least ``MIN_COVERAGE`` of the question's content (idf-weighted: a rare word the corpus has
  never seen, like "Mars", weighs the most), and
* scores at least ``MIN_STRENGTH`` = BM25 divided by the most an idf of this workspace can be (so
  a question made only of words that are everywhere in the corpus is not "answered" by chance).

Otherwise the reply says, in plain words, that it does not know, and offers what the bot can do (a
ticket when a ticket action is connected). With ``BOTCTL_LLM_URL`` set (OpenAI-compatible), the
answer is phrased by the model from the retrieved passages only, and used only if it cites nothing
but the passages it was given; on any error the extractive answer stands.

Hybrid retrieval. Beside FTS5, a local embedding model (all-MiniLM-L6-v2, int8 ONNX, shipped in a
PyPI wheel; embed.py) ranks the passages by meaning against vectors stored with them (vectors.py,
computed at `add`); hybrid.py fuses the two and decides grounded / not grounded with constants
calibrated on bench/knowledge_eval (docs/knowledge-retrieval.md); the model then picks the sentences
that answer. ``BOTCTL_KNOWLEDGE_DENSE=0`` (or the model not installed) leaves FTS5 and the thresholds
above, alone.

One job per module, each importing only the ones above it:

* text.py      folding, tokens, content words, the Porter stemmer, sentences
* parse.py     Markdown / plain text / HTML → blocks (headings, paragraphs, list items)
* chunk.py     blocks → sections → chunks
* files.py     which files, read safely (links, FIFOs, `within`), parsed and chunked: ParsedDocument
* embed.py     the local embedding model, loaded from its installed package (never downloaded)
* vectors.py   each passage's heading and sentence vectors, synced at `add`, recomputed when the model
               or layout changes
* index.py     the store: documents, FTS5 rows, per-workspace term statistics; add, remove, purge
* retrieve.py  candidates scoped to the workspace, re-scored on its own statistics; best sentences; search
* hybrid.py    FTS5 and dense rankings fused; the grounded decision (and why); sentences; search
* phrase.py    the optional LLM phrasing, checked against the passages it was given
* answers.py   extractive, cited answers or a calibrated "I don't know"

The package does not import `botctl.workspaces` (which imports it to purge a deleted workspace's
index): it takes a workspace as anything with an ``id`` and a ``name`` (WorkspaceLike).
"""

from botctl.knowledge.answers import SECOND_PASSAGE_RATIO, answer, answer_async, explain
from botctl.knowledge.chunk import (
    CHUNK_MAX_WORDS,
    CHUNK_MIN_WORDS,
    CHUNK_TARGET_WORDS,
    HEADING_WEIGHT,
    Chunk,
    chunk_section,
)
from botctl.knowledge.files import (
    KINDS,
    MAX_DOCUMENT_BYTES,
    DocumentError,
    ParsedDocument,
    check_path,
    collect,
    parse_document,
    read_file,
)
from botctl.knowledge.hybrid import search
from botctl.knowledge.index import (
    AddReport,
    Document,
    WorkspaceLike,
    add,
    list_docs,
    purge_orphans,
    purge_workspace,
    remove,
)
from botctl.knowledge.parse import Block, parse_html, parse_markdown, parse_text
from botctl.knowledge.phrase import LLM_SYSTEM_PROMPT
from botctl.knowledge.retrieve import (
    ANSWER_MAX_SENTENCES,
    ANSWER_MAX_WORDS,
    CANDIDATES,
    FTS_WEIGHTS,
    K1,
    MIN_COVERAGE,
    MIN_STRENGTH,
    B,
    Passage,
    is_grounded,
    scoped_match,
)
from botctl.knowledge.text import (
    MAX_QUERY_TERMS,
    MAX_QUESTION_CHARS,
    STOP_WORDS,
    content_words,
    fold,
    match_expression,
    query_terms,
    split_sentences,
    stem,
    terms,
    tokens,
)

__all__ = [
    "ANSWER_MAX_SENTENCES",
    "ANSWER_MAX_WORDS",
    "B",
    "CANDIDATES",
    "CHUNK_MAX_WORDS",
    "CHUNK_MIN_WORDS",
    "CHUNK_TARGET_WORDS",
    "FTS_WEIGHTS",
    "HEADING_WEIGHT",
    "K1",
    "KINDS",
    "LLM_SYSTEM_PROMPT",
    "MAX_DOCUMENT_BYTES",
    "MAX_QUERY_TERMS",
    "MAX_QUESTION_CHARS",
    "MIN_COVERAGE",
    "MIN_STRENGTH",
    "SECOND_PASSAGE_RATIO",
    "STOP_WORDS",
    "AddReport",
    "Block",
    "Chunk",
    "Document",
    "DocumentError",
    "ParsedDocument",
    "Passage",
    "WorkspaceLike",
    "add",
    "answer",
    "answer_async",
    "check_path",
    "chunk_section",
    "explain",
    "collect",
    "content_words",
    "fold",
    "is_grounded",
    "list_docs",
    "match_expression",
    "parse_document",
    "parse_html",
    "parse_markdown",
    "parse_text",
    "purge_orphans",
    "purge_workspace",
    "query_terms",
    "read_file",
    "remove",
    "scoped_match",
    "search",
    "split_sentences",
    "stem",
    "terms",
    "tokens",
]
