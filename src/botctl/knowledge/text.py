"""Text as the index sees it: folding, tokens, content words, the Porter stemmer, sentences.

Everything here is pure (no I/O): the parsers, the chunker, retrieval and answering all count words
the same way, and the stemmer matches SQLite's ``porter`` tokenizer word for word (tests compare them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

MAX_QUESTION_CHARS = 2000
MAX_QUERY_TERMS = 32

STOP_WORDS = frozenset(
    """
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
""".split()
)

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


_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("logi", "log"),
)
_STEP3 = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_STEP4 = (
    "al",
    "ance",
    "ence",
    "er",
    "ic",
    "able",
    "ible",
    "ant",
    "ement",
    "ment",
    "ent",
    "ion",
    "ou",
    "ism",
    "ate",
    "iti",
    "ous",
    "ive",
    "ize",
)


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


# -- sentences ------------------------------------------------------------------------------------

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


def sentence_units(text: str) -> list[tuple[int, str, str | None]]:
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
