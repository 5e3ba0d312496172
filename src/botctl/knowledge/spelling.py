"""Typos, read against the workspace's own words: "how much is shiping?" asks about shipping.

A question word that no passage of the workspace uses (its stem has no row in ``knowledge_terms``) is
read as the workspace's word one edit away — a letter deleted, inserted, changed, or two neighbours
swapped, Damerau's four kinds of typing error — when there is one; among several, the one the most
passages use. Only the workspace's own vocabulary is searched, so a correction can only land on a word
of its documents, and a word the documents do use is never touched ("botox" stays "botox" unless some
passage has a word one edit away from it). The candidates are stemmed as the index is, then looked up
by primary key in one query, so a question with an unknown word costs a fraction of a millisecond more.

A word that is English is not a typo even when the documents do not use it: "my jacket arrived
ripped" must not become "zipped", nor "at night" "at right". English, here, is the 30,522-entry
WordPiece vocabulary of the embedding model's tokenizer (models/, shipped with botctl): its ~20,000
whole words are the common words of English text. Words shorter than MIN_LENGTH are left alone too (one
edit turns "bus" into "but", "us", "plus"), as are words with digits or letters outside a-z.

A word of n letters has ~54n edits, each stemmed: words longer than MAX_LENGTH are not corrected and at
most MAX_WORDS words of a question are, so a question written to be expensive costs at most a few
milliseconds here (~3,000 stems, one query per 500).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from botctl.knowledge.text import stem

MIN_LENGTH = 5
MAX_LENGTH = 20
MAX_WORDS = 3
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_LOOKUP_CHUNK = 500  # parameters per query, well under every SQLite build's limit
_VOCABULARY = Path(__file__).resolve().parent / "models" / "all-MiniLM-L6-v2.tokenizer.json"


@functools.cache
def english() -> frozenset[str]:
    """The whole words of the tokenizer's vocabulary (read once, ~20 ms): words that are not typos."""
    try:
        vocab = json.loads(_VOCABULARY.read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError):  # a damaged install: correct nothing
        return frozenset()
    return frozenset(w for w in vocab if w.isascii() and w.isalpha())


def edits(word: str) -> set[str]:
    """Every string one deletion, swap of neighbours, change or insertion of a letter away from `word`."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in ALPHABET}
    out |= {a + c + b for a, b in splits for c in ALPHABET}
    out.discard(word)
    return out


def _plain_stem(word: str) -> str:
    # Not through stem()'s cache: a word's few hundred edits are not worth keeping there.
    return stem.__wrapped__(word)


def corrections(
    conn: sqlite3.Connection, ws_id: str, unknown: Iterable[tuple[str, str]]
) -> dict[str, tuple[str, int]]:
    """For each (word, stem) the workspace does not use: its stem → (the workspace's stem it is read as,
    how many passages use that one). Words with no candidate are absent."""
    wanted: dict[str, set[str]] = {}
    unknown = [
        (w, s) for w, s in unknown if MIN_LENGTH <= len(w) <= MAX_LENGTH and w.isascii() and w.isalpha()
    ]
    unknown = unknown[:MAX_WORDS]
    known = english() if unknown else frozenset()
    for word, original in unknown:
        if word in known or not known:
            continue
        for e in edits(word):
            s = _plain_stem(e)
            # The corrected stem goes into the FTS5 MATCH as a word: only one that the index's own
            # stemmer leaves as it is (the same Porter algorithm) finds the passages that use it.
            if s != original and _plain_stem(s) == s:
                wanted.setdefault(s, set()).add(original)
    if not wanted:
        return {}
    found: dict[str, int] = {}
    stems = sorted(wanted)
    for i in range(0, len(stems), _LOOKUP_CHUNK):
        part = stems[i : i + _LOOKUP_CHUNK]
        marks = ", ".join("?" * len(part))
        found.update(
            conn.execute(
                f"SELECT term, df FROM knowledge_terms WHERE workspace_id = ? AND term IN ({marks}) AND df > 0",
                (ws_id, *part),
            ).fetchall()
        )
    best: dict[str, tuple[str, int]] = {}
    for s, df in sorted(found.items()):
        for original in wanted[s]:
            if original not in best or df > best[original][1]:
                best[original] = (s, df)
    return best
