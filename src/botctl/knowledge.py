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
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import sqlite3
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import NotFound, UsageError

if TYPE_CHECKING:
    from botctl.app import App
    from botctl.workspaces import Workspace

KINDS = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".html": "html",
         ".htm": "html"}
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
CHUNK_MIN_WORDS = 80
CHUNK_MAX_WORDS = 250
CHUNK_TARGET_WORDS = 180
MAX_QUESTION_CHARS = 2000
MAX_QUERY_TERMS = 32
CANDIDATES = 40

# BM25 parameters (the usual ones) and the grounding thresholds, calibrated on tests/data/knowledge
# (tests/test_knowledge.py::test_thresholds_keep_a_margin_on_the_corpus): the best passage of each of
# the 19 answerable questions has coverage >= 0.67 ("exchange a jacket": the corpus says "an item")
# and strength >= 0.64 ("when will I get my refund": one fairly common word); for the 16 unanswerable
# ones every candidate has coverage <= 0.55 ("store opening hours", "change my delivery address") or
# strength <= 0.34 (the bare word "shipping").
K1 = 1.2
B = 0.75
HEADING_WEIGHT = 2  # a word of the section's heading path counts as much as two in its text
MIN_COVERAGE = 0.6
MIN_STRENGTH = 0.5
# A further passage joins the answer only when it is nearly as good as the best one.
SECOND_PASSAGE_RATIO = 0.8
ANSWER_MAX_SENTENCES = 3
ANSWER_MAX_WORDS = 90

FTS_WEIGHTS = "1.0, 3.0, 1.0, 0.0, 0.0, 0.0"  # title, section, body; workspace_id, document_id, terms: 0


class DocumentError(UsageError):
    """A path that cannot be added: missing, unsupported type, empty, too large, not text."""

    code = "invalid_document"


# -- text normalisation ---------------------------------------------------------------------------

STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren arent as at be because been before being
below between both but by can cannot cant could couldn did didn do does doesn doing don dont down during
each few for from further had hadn has hasn have haven having he her here hers herself him himself his how
i if in into is isn it its itself just ll me more most my myself no nor not now of off on once only or
other our ours ourselves out over own re same she should shouldn so some such than that thats the their
theirs them themselves then there these they this those through to too under until up very was wasn we
were weren what whats when where which while who whom why will with won would wouldn you your yours
yourself yourselves ve
hi hello hey please thanks thank ok okay tell know want need like get got getting take takes took long
much many able possible also really just let lets anyone someone something anything way help
one two three four five six seven eight nine ten
""".split())

_TOKEN = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Casefold and drop diacritics (as the index's unicode61 tokenizer does with remove_diacritics)."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def tokens(text: str) -> list[str]:
    """Words as the index sees them: folded runs of letters and digits (one-letter words dropped)."""
    return [t for t in _TOKEN.findall(fold(text)) if len(t) > 1 or t.isdigit()]


def content_words(text: str) -> list[str]:
    return [t for t in tokens(text) if t not in STOP_WORDS]


def terms(text: str) -> list[str]:
    """Stems of the content words: what coverage and the workspace's own BM25 count."""
    return [stem(t) for t in content_words(text)]


def query_terms(question: str) -> list[tuple[str, str]]:
    """(word, stem) for each distinct content stem of a question, in order, at most MAX_QUERY_TERMS."""
    seen: dict[str, str] = {}
    for word in content_words(question[:MAX_QUESTION_CHARS]):
        s = stem(word)
        if s not in seen:
            seen[s] = word
        if len(seen) >= MAX_QUERY_TERMS:
            break
    return [(w, s) for s, w in seen.items()]


def match_expression(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression: each word a quoted string (operators inside quotes are plain text)."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


# -- Porter stemmer (the original algorithm, as SQLite's porter tokenizer implements it; the tests
# compare the two word for word) ---------------------------------------------------------------------

def _cons(w: str, i: int) -> bool:
    c = w[i]
    if c in "aeiou":
        return False
    if c == "y":
        return i == 0 or not _cons(w, i - 1)
    return True


def _measure(s: str) -> int:
    n, after_vowel = 0, False
    for i in range(len(s)):
        if _cons(s, i):
            if after_vowel:
                n += 1
            after_vowel = False
        else:
            after_vowel = True
    return n


def _has_vowel(s: str) -> bool:
    return any(not _cons(s, i) for i in range(len(s)))


def _double_cons(s: str) -> bool:
    return len(s) >= 2 and s[-1] == s[-2] and _cons(s, len(s) - 1)


def _cvc(s: str) -> bool:
    n = len(s)
    return n >= 3 and _cons(s, n - 1) and not _cons(s, n - 2) and _cons(s, n - 3) and s[-1] not in "wxy"


_STEP2 = (("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
          ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"),
          ("ization", "ize"), ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"),
          ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"),
          ("logi", "log"))
_STEP3 = (("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
          ("ness", ""))
_STEP4 = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou",
          "ism", "ate", "iti", "ous", "ive", "ize")


def _suffix_rule(w: str, table: tuple[tuple[str, str], ...]) -> str:
    for suffix, replacement in table:
        if w.endswith(suffix):
            base = w[: len(w) - len(suffix)]
            return base + replacement if _measure(base) > 0 else w
    return w


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Porter-stem a folded word exactly as SQLite's porter tokenizer does (tests compare the two);
    words of 1-2 characters, over 64, or not ASCII are left as they are."""
    w = word
    if len(w) <= 2 or len(w) > 64 or not w.isascii():
        return w
    # As in SQLite, a suffix only matches a word longer than itself ("sses" -> "sse", "eed" -> "e").
    if (w.endswith("sses") and len(w) > 4) or (w.endswith("ies") and len(w) > 3):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    if w.endswith("eed") and len(w) > 3:
        if _measure(w[:-3]) > 0:
            w = w[:-1]
    else:
        for suffix in ("ed", "ing"):
            if w.endswith(suffix) and _has_vowel(w[: -len(suffix)]):
                w = w[: -len(suffix)]
                if w.endswith(("at", "bl", "iz")):
                    w += "e"
                elif _double_cons(w) and w[-1] not in "lsz":
                    w = w[:-1]
                elif _measure(w) == 1 and _cvc(w):
                    w += "e"
                break
    if w.endswith("y") and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    w = _suffix_rule(w, _STEP2)
    w = _suffix_rule(w, _STEP3)
    for suffix in _STEP4:
        if w.endswith(suffix):
            base = w[: len(w) - len(suffix)]
            if suffix == "ion" and not base.endswith(("s", "t")):
                continue
            if _measure(base) > 1:
                w = base
            break
    if w.endswith("e"):
        base = w[:-1]
        m = _measure(base)
        if m > 1 or (m == 1 and not _cvc(base)):
            w = base
    if w.endswith("ll") and _measure(w) > 1:
        w = w[:-1]
    return w


# -- parsing documents into blocks ----------------------------------------------------------------
# A block is ("h", level, text), ("p", 0, text) or ("li", 0, text).

Block = tuple[str, int, str]
_WS = re.compile(r"[ \t\r\f\v\u00a0]+")


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_REFLINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_MD_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_MD_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_MD_EMPH = re.compile(r"(\*\*|__)(\S(?:.*?\S)?)\1|(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])|(?<!\w)_(\S(?:.*?\S)?)_(?!\w)")
_MD_CODE = re.compile(r"`+([^`]*)`+")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|~])")
_MD_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_MD_HR = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MD_REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s+\S+")
_MD_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)


def _md_inline(text: str) -> str:
    import html

    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_REFLINK.sub(r"\1", text)
    text = _MD_AUTOLINK.sub(r"\1", text)
    text = _MD_CODE.sub(r"\1", text)
    for _ in range(2):  # nested emphasis: ***x***
        text = _MD_EMPH.sub(lambda m: m.group(2) or m.group(3) or m.group(4) or "", text)
    text = _MD_TAG.sub("", text)
    text = _MD_ESCAPE.sub(r"\1", text)
    return _clean(html.unescape(text))


def parse_markdown(text: str) -> tuple[str | None, list[Block]]:
    """(front-matter title or None, blocks)."""
    text = _HTML_COMMENT.sub("", text)
    lines = text.split("\n")
    title = None
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 60)):
            if lines[i].strip() in ("---", "..."):
                for meta in lines[1:i]:
                    key, _, value = meta.partition(":")
                    if key.strip().lower() == "title" and value.strip():
                        title = value.strip().strip("'\"")
                lines = lines[i + 1:]
                break
    blocks: list[Block] = []
    para: list[str] = []
    item: list[str] | None = None

    def flush() -> None:
        nonlocal item
        if item is not None:
            t = _md_inline(" ".join(item))
            if t:
                blocks.append(("li", 0, t))
            item = None
        if para:
            t = _md_inline(" ".join(para))
            if t:
                blocks.append(("p", 0, t))
            para.clear()

    fence: str | None = None
    code: list[str] = []
    for raw in lines:
        line = raw.rstrip()
        if fence is not None:
            if line.strip().startswith(fence):
                if any(c.strip() for c in code):
                    blocks.append(("p", 0, _clean(" ".join(code))))
                fence, code = None, []
            else:
                code.append(line)
            continue
        m = _MD_FENCE.match(line)
        if m:
            flush()
            fence = m.group(1)[:3]
            continue
        if not line.strip():
            flush()
            continue
        m = _MD_SETEXT.match(line)
        if m and para and item is None and len(para) == 1:
            blocks.append(("h", 1 if m.group(1)[0] == "=" else 2, _md_inline(para[0])))
            para.clear()
            continue
        if _MD_HR.match(line):
            flush()
            continue
        m = _MD_ATX.match(line)
        if m:
            flush()
            heading = _md_inline(m.group(2) or "")
            if heading:
                blocks.append(("h", len(m.group(1)), heading))
            continue
        if _MD_REFDEF.match(line):
            continue
        stripped = line.lstrip()
        while stripped.startswith(">"):
            stripped = stripped[1:].lstrip()
        if stripped.startswith("|") or (stripped.count("|") >= 2 and not para and item is None):
            flush()
            if not _MD_TABLE_SEP.match(stripped):
                cells = [_md_inline(c) for c in stripped.strip("|").split("|")]
                row = " — ".join(c for c in cells if c)
                if row:
                    blocks.append(("li", 0, row))
            continue
        m = _MD_LIST.match(stripped)
        if m:
            flush()
            item = [m.group(1)]
            continue
        if item is not None and (line.startswith((" ", "\t")) or not para):
            item.append(stripped)
            continue
        if item is not None:
            flush()
        para.append(stripped)
    flush()
    if fence is not None and any(c.strip() for c in code):
        blocks.append(("p", 0, _clean(" ".join(code))))
    return title, blocks


_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SKIP = frozenset("script style nav noscript template svg iframe footer button select textarea object canvas".split())
_BREAK = frozenset("""p div section article main header aside blockquote pre table thead tbody tfoot tr ul ol dl
figure figcaption address details summary form fieldset legend hr body html caption""".split())
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


class _HTMLBlocks(HTMLParser):
    """HTML → blocks with the standard library's parser: headings, paragraphs, list items.

    Dropped: script, style, nav, footer, noscript, template, svg, iframe, form controls, the head
    (except <title>), and anything `hidden` or `aria-hidden="true"`.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title: str | None = None
        self._buf: list[str] = []
        self._kind: tuple[str, int] = ("p", 0)
        self._skip: list[str] = []
        self._in_head = False
        self._in_title = False
        self._title_buf: list[str] = []

    def _flush(self) -> None:
        text = _clean(" ".join("".join(self._buf).split("\n")))
        self._buf = []
        if text:
            kind, level = self._kind
            self.blocks.append((kind, level, text))
        self._kind = ("p", 0)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        a = dict(attrs)
        hidden = "hidden" in a or (a.get("aria-hidden") or "").lower() == "true" or (a.get("role") or "") == "navigation"
        if (tag in _SKIP or hidden) and tag not in _VOID:
            self._skip.append(tag)
            return
        if tag == "head":
            self._in_head = True
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS:
            self._flush()
            self._kind = ("h", _HEADINGS[tag])
        elif tag in ("li", "dt", "dd"):
            self._flush()
            self._kind = ("li", 0)
        elif tag in ("td", "th"):
            self._buf.append(" ")
        elif tag == "br":
            self._buf.append("\n")
        elif tag in _BREAK:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag in self._skip:
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
            self.title = _clean("".join(self._title_buf)) or None
        elif tag in _HEADINGS or tag in ("li", "dt", "dd") or tag in _BREAK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self._title_buf.append(data)
        elif not self._in_head:
            self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def parse_html(text: str) -> tuple[str | None, list[Block]]:
    p = _HTMLBlocks()
    p.feed(text)
    p.close()
    return p.title, p.blocks


_TXT_LIST = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+(.*)$")


def parse_text(text: str) -> tuple[str | None, list[Block]]:
    """Plain text: paragraphs at blank lines. A short single line with no sentence-ending punctuation
    (or an underlined one, or a question) followed by more text is a heading; the first is the title."""
    paras = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    blocks: list[Block] = []
    seen_heading = False
    for i, para in enumerate(paras):
        lines = [ln.strip() for ln in para.strip().split("\n") if ln.strip()]
        if len(lines) == 2 and re.fullmatch(r"=+|-+", lines[1]):
            blocks.append(("h", 1 if lines[1][0] == "=" else 2, _clean(lines[0])))
            seen_heading = True
            continue
        if len(lines) == 1 and i + 1 < len(paras):
            line = lines[0]
            words = line.split()
            if len(words) <= 12 and len(line) <= 90 and not _TXT_LIST.match(line) and (
                    line[-1] not in ".,;:!" or line.isupper()):
                blocks.append(("h", 2 if seen_heading or blocks else 1, line))
                seen_heading = True
                continue
        if all(_TXT_LIST.match(ln) for ln in lines):
            blocks.extend(("li", 0, _clean(_TXT_LIST.match(ln).group(1))) for ln in lines)  # type: ignore[union-attr]
            continue
        blocks.append(("p", 0, _clean(" ".join(lines))))
    return None, blocks


# -- sections and chunks --------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph; each list line (``- item``) is one unit of its own."""
    out: list[str] = []
    for line in paragraph.split("\n"):
        line = line.strip()
        if not line:
            continue
        if line.startswith("- "):
            out.append(line)
        else:
            out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
    return out


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class Chunk:
    section: str
    text: str
    section_terms: list[str] = field(default_factory=list)
    body_terms: list[str] = field(default_factory=list)

    @property
    def stored_terms(self) -> str:
        """What the index keeps for re-scoring: heading stems `|` body stems, each in text order."""
        return " ".join(self.section_terms) + " | " + " ".join(self.body_terms)

    @property
    def length(self) -> int:
        return HEADING_WEIGHT * len(self.section_terms) + len(self.body_terms)

    @property
    def term_set(self) -> set[str]:
        return set(self.section_terms) | set(self.body_terms)


def _sections(title: str, blocks: list[Block], title_from_h1: bool) -> list[tuple[str, list[str]]]:
    """[(section path, paragraphs)], list items of a run joined as ``- a\\n- b`` into one paragraph."""
    out: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    paras: list[str] = []
    used_title = not title_from_h1

    def close() -> None:
        if paras:
            out.append((" > ".join(h for _, h in path) or title, list(paras)))
            paras.clear()

    for kind, level, text in blocks:
        if kind == "h":
            close()
            if not used_title and level == 1:
                used_title = True
                continue
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, text))
        elif kind == "li":
            if paras and paras[-1].startswith("- "):
                paras[-1] += "\n- " + text
            else:
                paras.append("- " + text)
        else:
            paras.append(text)
    close()
    return out


def _split_long(paragraph: str) -> list[str]:
    """A paragraph over CHUNK_MAX_WORDS cut at sentence (then word) boundaries."""
    pieces: list[str] = []
    current: list[str] = []
    for sentence in split_sentences(paragraph):
        words = sentence.split()
        while len(words) > CHUNK_MAX_WORDS:
            pieces.append(" ".join(words[:CHUNK_MAX_WORDS]))
            words = words[CHUNK_MAX_WORDS:]
        sentence = " ".join(words)
        if current and _words(" ".join(current)) + len(words) > CHUNK_MAX_WORDS:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


def chunk_section(paragraphs: list[str]) -> list[str]:
    """One chunk per section up to CHUNK_MAX_WORDS. A longer section is cut at paragraph (or, inside a
    very long paragraph, sentence) boundaries into chunks of at most CHUNK_MAX_WORDS, as even as the
    boundaries allow around CHUNK_TARGET_WORDS, avoiding chunks under CHUNK_MIN_WORDS: a small dynamic
    programme over the paragraphs (a chunk holds at most CHUNK_MAX_WORDS units, so it stays linear)."""
    total = sum(_words(p) for p in paragraphs)
    if total <= CHUNK_MAX_WORDS:
        return ["\n\n".join(paragraphs)]
    units: list[str] = []
    for p in paragraphs:
        units.extend(_split_long(p) if _words(p) > CHUNK_MAX_WORDS else [p])
    sizes = [_words(u) for u in units]
    target = total / math.ceil(total / CHUNK_TARGET_WORDS)
    inf = float("inf")
    best = [0.0] + [inf] * len(units)
    cut = [0] * (len(units) + 1)
    for i in range(1, len(units) + 1):
        size = 0
        for j in range(i - 1, -1, -1):
            size += sizes[j]
            if size > CHUNK_MAX_WORDS:
                break
            cost = best[j] + (size - target) ** 2 + (10 * (CHUNK_MIN_WORDS - size) ** 2 if size < CHUNK_MIN_WORDS else 0)
            if cost < best[i]:
                best[i], cut[i] = cost, j
    chunks: list[str] = []
    i = len(units)
    while i > 0:
        chunks.append("\n\n".join(units[cut[i]:i]))
        i = cut[i]
    return chunks[::-1]


@dataclass
class ParsedDocument:
    name: str
    source: str
    kind: str
    title: str
    sha256: str
    size: int
    chunks: list[Chunk]

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
    return DocumentError(f"{path}: a symbolic link; links are not followed here.",
                         hint="Copy the document in place of the link.", code="symlink_refused")


def _outside(path: Path | str, label: str) -> DocumentError:
    return DocumentError(f"{path}: outside {label}: only files inside it are read.", code="outside_folder")


def _opened_path(fd: int, path: Path) -> Path:
    """The file an open descriptor really is (the kernel's answer, so a folder swapped for a link between a
    check and the open is seen); falls back to resolving the name where /proc is not available."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(path).resolve()


def check_path(path: Path, *, within: Path | None, follow_symlinks: bool = False, label: str | None = None) -> None:
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


def read_file(path: Path, *, limit: int, follow_symlinks: bool = False, within: Path | None = None,
              label: str | None = None) -> bytes:
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
        too_large = DocumentError(f"{path}: too large ({st.st_size // 1024} KiB; the limit is "
                                  f"{limit // (1024 * 1024) or 1} MiB).", hint="Split it into smaller documents.")
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


def parse_document(path: Path, name: str, *, follow_symlinks: bool = False, within: Path | None = None,
                   label: str | None = None) -> ParsedDocument:
    """Read and chunk one file. DocumentError (one line) for anything that cannot be added: also a symbolic
    link (unless `follow_symlinks`) and, with `within` (a resolved folder), a file that is not inside it."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"{path}: unsupported file type {path.suffix or '(none)'!r}.",
                            hint="Add Markdown (.md), plain text (.txt) or HTML (.html) files.")
    data = read_file(path, limit=MAX_DOCUMENT_BYTES, follow_symlinks=follow_symlinks, within=within, label=label)
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
        raise DocumentError(f"{path}: no text to index (the file is empty or has only markup).",
                            hint="Check the file, or leave it out.")
    return ParsedDocument(name=name, source=str(path.resolve()), kind=kind, title=title,
                          sha256=hashlib.sha256(data).hexdigest(), size=len(data), chunks=chunks)


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


def collect(paths: Sequence[str | os.PathLike[str]], *, follow_symlinks: bool = False, within: Path | None = None,
            label: str | None = None) -> tuple[list[tuple[Path, str, Path | None]], list[dict[str, str]]]:
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
                raise DocumentError(f"{p}: unsupported file type {p.suffix or '(none)'!r}.",
                                    hint="Add Markdown (.md), plain text (.txt) or HTML (.html) files.")
            files.append((p, p.name, within))
        elif p.exists():
            raise DocumentError(f"{p}: not a regular file or folder.")
        else:
            raise DocumentError(f"{p}: no such file or folder.")
    by_name: dict[str, Path] = {}
    for f, name, _root in files:
        if name in by_name and by_name[name].resolve() != f.resolve():
            raise DocumentError(f"two files would both be document {name!r}: {by_name[name]} and {f}.",
                                hint="Add them in separate commands from different folders, or rename one.")
        by_name[name] = f
    unique = list({name: (f, name, root) for f, name, root in files}.values())
    return unique, skipped


# -- storage ----------------------------------------------------------------------------------------

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

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "title", "kind", "source", "sha256", "bytes", "chunks",
                                              "words", "added_at", "updated_at")}


@dataclass
class AddReport:
    workspace: str
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "added": self.added, "replaced": self.replaced,
                "unchanged": self.unchanged, "skipped": self.skipped, "chunks": self.chunks}


_DOC_COLUMNS = "name, title, kind, source, sha256, bytes, chunks, words, added_at, updated_at"


def _workspace(conn: sqlite3.Connection, ws: Workspace | str) -> Workspace:
    from botctl import workspaces

    return workspaces.get(conn, ws) if isinstance(ws, str) else ws


def list_docs(conn: sqlite3.Connection, ws: Workspace | str) -> list[Document]:
    w = _workspace(conn, ws)
    return [Document(*r) for r in conn.execute(
        f"SELECT {_DOC_COLUMNS} FROM knowledge_documents WHERE workspace_id = ? ORDER BY name", (w.id,))]


def _adjust_df(conn: sqlite3.Connection, ws_id: str, chunk_terms: Iterable[set[str]], sign: int) -> None:
    df: Counter[str] = Counter()
    for ts in chunk_terms:
        df.update(ts)
    conn.executemany(
        "INSERT INTO knowledge_terms (workspace_id, term, df) VALUES (?, ?, ?) "
        "ON CONFLICT (workspace_id, term) DO UPDATE SET df = df + excluded.df",
        [(ws_id, t, sign * n) for t, n in df.items()])
    if sign < 0:
        conn.execute("DELETE FROM knowledge_terms WHERE workspace_id = ? AND df <= 0", (ws_id,))


def _delete_document(conn: sqlite3.Connection, ws_id: str, doc_id: int) -> int:
    # Found through the index (document_id is an indexed column), then checked exactly.
    rows = conn.execute(
        "SELECT rowid, terms FROM knowledge_fts WHERE knowledge_fts MATCH ? AND workspace_id = ? AND document_id = ?",
        (f'{_workspace_phrase(ws_id)} AND document_id : "{int(doc_id)}"', ws_id, doc_id)).fetchall()
    _adjust_df(conn, ws_id, (set(r[1].split()) - {"|"} for r in rows), -1)
    conn.executemany("DELETE FROM knowledge_fts WHERE rowid = ?", [(r[0],) for r in rows])
    return len(rows)


def _insert_chunks(conn: sqlite3.Connection, ws_id: str, doc_id: int, doc: ParsedDocument) -> None:
    conn.executemany(
        "INSERT INTO knowledge_fts (title, section, body, workspace_id, document_id, terms) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(doc.title, c.section, c.text, ws_id, doc_id, c.stored_terms) for c in doc.chunks])
    _adjust_df(conn, ws_id, (c.term_set for c in doc.chunks), +1)


def purge_orphans(conn: sqlite3.Connection) -> int:
    """Drop index rows whose document is gone (a deleted workspace cascades its documents and terms,
    but an FTS5 table cannot take part in a foreign key). Call inside a transaction."""
    return conn.execute(
        "DELETE FROM knowledge_fts WHERE document_id NOT IN (SELECT id FROM knowledge_documents)").rowcount


def purge_workspace(conn: sqlite3.Connection, workspace_id: str) -> int:
    """Delete a workspace's whole index (for `workspaces.delete`, inside its transaction, before the
    workspace row goes; its documents and terms rows follow by ON DELETE CASCADE)."""
    n = conn.execute("DELETE FROM knowledge_fts WHERE workspace_id = ?", (workspace_id,)).rowcount
    conn.execute("DELETE FROM knowledge_terms WHERE workspace_id = ?", (workspace_id,))
    conn.execute("DELETE FROM knowledge_documents WHERE workspace_id = ?", (workspace_id,))
    return n


def add(app: App, ws: Workspace | str, paths: Sequence[str | os.PathLike[str]], *, follow_symlinks: bool = False,
        within: Path | None = None, label: str | None = None) -> AddReport:
    """Add (or replace) documents. Everything is read and parsed first; then one transaction writes all
    of it with one audit record, so a bad file leaves nothing half-added. Unchanged files (same name,
    same SHA-256) are no-ops. Symbolic links and `within` as in `collect`."""
    files, skipped = collect(paths, follow_symlinks=follow_symlinks, within=within, label=label)
    parsed = [parse_document(f, name, follow_symlinks=follow_symlinks and within is None, within=root, label=label)
              for f, name, root in files]
    conn = app.vault.conn
    w = _workspace(conn, ws)
    report = AddReport(workspace=w.name, skipped=skipped)
    changes: list[dict[str, Any]] = []
    now = store.now_iso()
    with store.transaction(conn):
        purge_orphans(conn)
        for doc in parsed:
            row = conn.execute("SELECT id, sha256 FROM knowledge_documents WHERE workspace_id = ? AND name = ?",
                               (w.id, doc.name)).fetchone()
            if row is not None and row[1] == doc.sha256:
                report.unchanged.append(doc.name)
                continue
            values = (doc.title, doc.kind, doc.source, doc.sha256, doc.size, len(doc.chunks), doc.words,
                      doc.tokens, now)
            if row is None:
                doc_id = conn.execute(
                    "INSERT INTO knowledge_documents (workspace_id, name, title, kind, source, sha256, bytes, "
                    "chunks, words, tokens, updated_at, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (w.id, doc.name, *values, now)).lastrowid
                report.added.append(doc.name)
            else:
                doc_id = row[0]
                _delete_document(conn, w.id, doc_id)
                conn.execute(
                    "UPDATE knowledge_documents SET title = ?, kind = ?, source = ?, sha256 = ?, bytes = ?, "
                    "chunks = ?, words = ?, tokens = ?, updated_at = ? WHERE id = ?", (*values, doc_id))
                report.replaced.append(doc.name)
            _insert_chunks(conn, w.id, doc_id, doc)
            report.chunks += len(doc.chunks)
            changes.append({"name": doc.name, "change": "replaced" if row else "added", "kind": doc.kind,
                            "sha256": doc.sha256, "bytes": doc.size, "chunks": len(doc.chunks)})
        if changes:
            app.audit("knowledge.added", workspace=w.name,
                      detail={"documents": changes, "added": len(report.added), "replaced": len(report.replaced),
                              "unchanged": len(report.unchanged)})
    return report


def remove(app: App, ws: Workspace | str, doc: str) -> Document:
    """Remove one document (by its name, as `list_docs` shows it) and its chunks."""
    conn = app.vault.conn
    w = _workspace(conn, ws)
    with store.transaction(conn):
        row = conn.execute(f"SELECT id, {_DOC_COLUMNS} FROM knowledge_documents WHERE workspace_id = ? AND name = ?",
                           (w.id, doc)).fetchone()
        if row is None:
            raise NotFound(f"no document {doc!r} in workspace {w.name!r}.",
                           hint=f"See `botctl knowledge list -w {w.name}`.", code="unknown_document")
        removed = Document(*row[1:])
        chunks = _delete_document(conn, w.id, row[0])
        conn.execute("DELETE FROM knowledge_documents WHERE id = ?", (row[0],))
        purge_orphans(conn)
        app.audit("knowledge.removed", workspace=w.name,
                  detail={"document": removed.name, "sha256": removed.sha256, "chunks": chunks})
    return removed


# -- retrieval --------------------------------------------------------------------------------------

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

    def as_dict(self) -> dict[str, Any]:
        return {"document": self.document, "title": self.title, "section": self.section,
                "excerpt": self.excerpt, "score": round(self.score, 4)}


@dataclass
class _Query:
    terms: list[tuple[str, str]]
    idf: dict[str, float]
    idf_max: float

    @property
    def mass(self) -> float:
        return sum(self.idf[s] for _, s in self.terms)


# The top k by FTS5's bm25 inside the workspace (scoped in the MATCH: the index alone answers it, no
# row is read), then only those k rows, checked again: their workspace_id column, and their document's.
# CROSS JOIN fixes the order top -> row (by rowid) -> document (by primary key).
_CANDIDATES_SQL = (
    "WITH top AS (SELECT rowid AS id, bm25(knowledge_fts, " + FTS_WEIGHTS + ") AS rank FROM knowledge_fts "
    "WHERE knowledge_fts MATCH ? ORDER BY rank LIMIT ?) "
    "SELECT d.name, d.title, f.section, f.body, f.terms FROM top CROSS JOIN knowledge_fts AS f ON f.rowid = top.id "
    "CROSS JOIN knowledge_documents AS d ON d.id = f.document_id AND d.workspace_id = ? "
    "WHERE f.workspace_id = ? ORDER BY top.rank"
)


def scoped_match(workspace_id: str, words: Iterable[str]) -> str:
    """The MATCH expression: the workspace's rows only, and the words in the text columns only.

    The workspace is matched by the random part of its id (``ws_<16 hex>`` is indexed as the tokens
    "ws" and the hex; "ws" is in every tenant's rows, so a phrase with it costs position checks on all
    of them); the rows returned are then compared with the whole id in SQL."""
    return f"{_workspace_phrase(workspace_id)} AND {{title section body}} : ({match_expression(words)})"


def _workspace_phrase(workspace_id: str) -> str:
    parts = _TOKEN.findall(workspace_id.lower())
    if len(parts) > 1 and parts[0] == "ws":
        parts = parts[1:]
    return f'workspace_id : "{" ".join(parts)}"'


def _idf(n: float, df: float) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _retrieve(conn: sqlite3.Connection, ws_id: str, question: str, k: int) -> tuple[_Query, list[Passage]]:
    qterms = query_terms(question)
    n, total = conn.execute("SELECT total(chunks), total(tokens) FROM knowledge_documents WHERE workspace_id = ?",
                            (ws_id,)).fetchone()
    if not qterms or not n:
        return _Query(qterms, {s: 0.0 for _, s in qterms}, 0.0), []
    stems = [s for _, s in qterms]
    marks = ", ".join("?" * len(stems))
    df = dict(conn.execute(f"SELECT term, df FROM knowledge_terms WHERE workspace_id = ? AND term IN ({marks})",
                           (ws_id, *stems)).fetchall())
    q = _Query(qterms, {s: _idf(n, df.get(s, 0)) for s in stems}, _idf(n, 0))
    try:
        rows = conn.execute(_CANDIDATES_SQL, (scoped_match(ws_id, (w for w, _ in qterms)), k, ws_id, ws_id)).fetchall()
    except sqlite3.OperationalError:  # defensive: the expression is built from quoted words only
        return q, []
    avgdl = (total / n) or 1.0
    parsed = []
    for name, title, section, body, stored in rows:
        heading, _, text_terms = stored.partition(" | ")
        parsed.append((name, title, section, body, f" {heading} ", f" {text_terms} "))
    # A pair of adjacent question words that this workspace's passages use as a phrase ("delivery
    # address") names one thing: a passage with only half of it ("email address") is not about it.
    qseq = [stem(w) for w in content_words(question[:MAX_QUESTION_CHARS])]
    phrases = {(a, b) for a, b in zip(qseq, qseq[1:], strict=False) if a != b}
    phrases = {ph for ph in phrases if any(f" {ph[0]} {ph[1]} " in h or f" {ph[0]} {ph[1]} " in t
                                           for *_, h, t in parsed)}
    out = []
    for name, title, section, body, heading, text_terms in parsed:
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
        out.append(Passage(document=name, section=section, excerpt="", score=score, title=title,
                           coverage=coverage, strength=strength, text=body, matched=frozenset(matched)))
    # Coordination: a passage that covers more of the question outranks one that repeats part of it.
    out.sort(key=lambda p: (-p.score * p.coverage ** 2, -p.coverage))
    return q, out


def _sentence_units(text: str) -> list[tuple[int, str, str | None]]:
    """(paragraph index, sentence, the intro line of its list if it is a list item)."""
    units: list[tuple[int, str, str | None]] = []
    for pi, para in enumerate(text.split("\n\n")):
        sentences = split_sentences(para)
        for s in sentences:
            intro = None
            if s.startswith("- ") and pi > 0 and units:
                prev = [u for u in units if u[0] == pi - 1]
                if prev and prev[-1][1].endswith(":"):
                    intro = prev[-1][1]
            units.append((pi, s, intro))
    return units


def _best_sentences(q: _Query, passage: Passage, *, max_sentences: int = ANSWER_MAX_SENTENCES,
                    max_words: int = ANSWER_MAX_WORDS) -> tuple[list[str], set[str]]:
    """Extractive: the sentences of the passage that best cover the question, in document order."""
    units = _sentence_units(passage.text)
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
            own = [(sum(q.idf[s] for s in ts & stems), -i) for i, ts in enumerate(unit_terms) if i not in chosen]
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


def search(conn: sqlite3.Connection, ws: Workspace | str, query: str, limit: int = 5) -> list[Passage]:
    """The workspace's passages that best match `query`, best first (score: BM25 on this workspace's
    statistics). Passages that match none of the query's content words are never returned."""
    w = _workspace(conn, ws)
    limit = max(1, min(int(limit), 50))
    q, passages = _retrieve(conn, w.id, query, max(CANDIDATES, 4 * limit))
    out = passages[:limit]
    for p in out:
        p.excerpt = _excerpt(q, p)
    return out


def is_grounded(p: Passage) -> bool:
    return p.coverage >= MIN_COVERAGE and p.strength >= MIN_STRENGTH


# -- answers ----------------------------------------------------------------------------------------

def _action_label(action: dict[str, Any]) -> str:
    name = str(action.get("name", "")).split(".", 1)[-1]
    words = [("your" if w == "my" else w) for w in name.split("_") if w]
    return " ".join(words)


def _suggest(question: str, actions: list[dict[str, Any]] | None, *, grounded: bool) -> list[dict[str, Any]]:
    """Actions worth offering: those whose name or description shares a content word with the question;
    when the answer is unknown, also a ticket first and then whatever else the bot can do."""
    if not actions:
        return []
    qstems = {s for _, s in query_terms(question)}
    relevant, tickets, others = [], [], []
    for a in actions:
        if not isinstance(a, dict) or not a.get("name"):
            continue
        entry = {k: a[k] for k in ("name", "description", "customer_specific") if k in a}
        vocab = set(terms(f"{_action_label(a)} {a.get('description', '')}")) - {"visitor", "on"}
        if str(a["name"]).endswith(".create_ticket"):
            tickets.append(entry)
        elif qstems & vocab:
            relevant.append(entry)
        else:
            others.append(entry)
    if grounded:
        return relevant[:3]
    return (tickets[:1] + relevant + others)[:5]


def _unknown(question: str, actions: list[dict[str, Any]] | None) -> dict[str, Any]:
    suggested = _suggest(question, actions, grounded=False)
    text = "Sorry, I don't know the answer to that: I couldn't find it in this site's help documents."
    if any(str(a["name"]).endswith(".create_ticket") for a in suggested):
        text += " I can open a support ticket for you, so that someone from the team can answer."
    elif suggested:
        text += " Here is what I can do: " + ", ".join(_action_label(a) for a in suggested) + "."
    else:
        text += " Please contact the support team directly."
    return {"answer": text, "grounded": False, "citations": [], "suggested_actions": suggested}


def _grounded_answer(conn: sqlite3.Connection, ws: Workspace | str, question: str,
                     available_actions: list[dict[str, Any]] | None) -> tuple[dict[str, Any], list[Passage]]:
    """The extractive result, and the passages it cites (what an LLM may phrase from)."""
    w = _workspace(conn, ws)
    question = question or ""
    q, passages = _retrieve(conn, w.id, question, CANDIDATES)
    good = [p for p in passages if is_grounded(p)]
    if not good:
        return _unknown(question, available_actions), []
    best = good[0]
    sentences, covered = _best_sentences(q, best)
    used: list[tuple[Passage, list[str]]] = [(best, sentences)]
    uncovered = {s for _, s in q.terms} - covered
    for p in good[1:3]:
        if sum(q.idf[s] for s in uncovered) < 0.2 * q.mass or p.score < SECOND_PASSAGE_RATIO * best.score:
            break
        if any((p.document, p.section) == (u.document, u.section) for u, _ in used):
            continue
        more, got = _best_sentences(q, p, max_sentences=2)
        if got & uncovered:
            used.append((p, more))
            uncovered -= got
    result = {
        "answer": "\n\n".join(_join(s) for _, s in used),
        "grounded": True,
        "citations": [{"document": p.document, "section": p.section, "excerpt": _join(s)} for p, s in used],
        "suggested_actions": _suggest(question, available_actions, grounded=True),
    }
    return result, [p for p, _ in used]


def _with_phrasing(result: dict[str, Any], phrased: tuple[str, list[int]] | None) -> dict[str, Any]:
    if phrased is None:
        return result
    text, cited = phrased
    return {**result, "answer": text, "citations": [result["citations"][i] for i in cited]}


def answer(conn: sqlite3.Connection, ws: Workspace | str, question: str, *,
           available_actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A grounded answer from the workspace's documents, or a plain "I don't know" with what the bot can do.

    Returns ``{"answer", "grounded", "citations": [{"document", "section", "excerpt"}], "suggested_actions"}``.
    `ws`: a Workspace (or its name). `available_actions`: the workspace's action catalog entries
    (``{"name", "description", "customer_specific", ...}``, as the provider lists them); a
    ``*.create_ticket`` one is offered first when there is no answer. Never touches a credential.
    Blocking: SQLite, and the LLM call when ``BOTCTL_LLM_URL`` is set (async code: `answer_async`).
    """
    result, used = _grounded_answer(conn, ws, question, available_actions)
    if used and os.environ.get("BOTCTL_LLM_URL"):
        result = _with_phrasing(result, _phrase_with_llm(question, used))
    return result


async def answer_async(conn: sqlite3.Connection, ws: Workspace | str, question: str, *,
                       available_actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`answer` for the provider's event loop: the lookup runs inline (milliseconds, SQLite), the optional
    LLM call is awaited (httpx.AsyncClient), so a slow model never blocks other requests."""
    result, used = _grounded_answer(conn, ws, question, available_actions)
    if used and os.environ.get("BOTCTL_LLM_URL"):
        result = _with_phrasing(result, await _phrase_with_llm_async(question, used))
    return result


# -- optional LLM phrasing ----------------------------------------------------------------------------

LLM_SYSTEM_PROMPT = (
    "You answer questions from a business's website visitors, using ONLY the numbered passages you are "
    "given from the business's own help documents. Do not use any outside knowledge, do not guess, and "
    "do not add facts, numbers, prices, dates, links or promises that are not in the passages. Answer in "
    "at most three short sentences, in the visitor's language, and put the number of each passage you "
    "used in square brackets, like [1]. If the passages do not answer the question, reply exactly "
    "NOT_IN_PASSAGES."
)
_ANY_BRACKET_REF = re.compile(r"\[\s*(?:source|passage|doc(?:ument)?)?\s*#?\s*(\d+(?:\s*,\s*\d+)*)\s*\]", re.I)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _llm_endpoint(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def _llm_request(question: str, passages: list[Passage]) -> tuple[str, dict[str, str], dict[str, Any], float]:
    numbered = "\n\n".join(f"[{i}] {p.title} — {p.section} ({p.document})\n{p.text}"
                           for i, p in enumerate(passages, 1))
    headers = {"Content-Type": "application/json"}
    key = os.environ.get("BOTCTL_LLM_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {
        "model": os.environ.get("BOTCTL_LLM_MODEL", "default"),
        "temperature": 0,
        "max_tokens": 400,
        "messages": [{"role": "system", "content": LLM_SYSTEM_PROMPT},
                     {"role": "user",
                      "content": f"Passages:\n\n{numbered}\n\nQuestion: {question[:MAX_QUESTION_CHARS]}"}],
    }
    try:
        timeout = float(os.environ.get("BOTCTL_LLM_TIMEOUT", "20"))
    except ValueError:
        timeout = 20.0
    return _llm_endpoint(os.environ["BOTCTL_LLM_URL"]), headers, body, timeout


def _check_llm_reply(data: Any, passages: list[Passage]) -> tuple[str, list[int]] | None:
    """(answer without the [n] markers, indexes of the passages it cites), or None: malformed, declined,
    empty, too long, citing nothing, citing anything but passages 1..n, or stating a number (a price, a
    delay, a date) that is not in the passages it cites."""
    n_passages = len(passages)
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(content, str) or "NOT_IN_PASSAGES" in content or len(content) > 2000:
        return None
    refs = [int(n) for m in _ANY_BRACKET_REF.findall(content) for n in m.split(",")]
    if not refs or any(not 1 <= r <= n_passages for r in refs):
        return None
    text = _ANY_BRACKET_REF.sub("", content)
    sources = " ".join(passages[r - 1].text for r in set(refs))
    if any(num not in sources for num in _NUMBER.findall(text)):
        return None
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    if not text:
        return None
    return text, sorted({r - 1 for r in refs})


def _phrase_with_llm(question: str, passages: list[Passage]) -> tuple[str, list[int]] | None:
    """The model's phrasing of the passages, checked; None on any failure (the extractive answer stands)."""
    import httpx

    try:
        url, headers, body, timeout = _llm_request(question, passages)
        r = httpx.post(url, json=body, headers=headers, timeout=timeout, follow_redirects=False)
        r.raise_for_status()
        return _check_llm_reply(r.json(), passages)
    except Exception:  # unreachable, timeout, HTTP error, not JSON: the extractive answer stands
        return None


async def _phrase_with_llm_async(question: str, passages: list[Passage]) -> tuple[str, list[int]] | None:
    import httpx

    try:
        url, headers, body, timeout = _llm_request(question, passages)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            r = await client.post(url, json=body, headers=headers)
        r.raise_for_status()
        return _check_llm_reply(r.json(), passages)
    except Exception:
        return None
