"""Sections and chunks: blocks → (heading path, paragraphs) → chunks of 80-250 words.

Headings make sections (the heading path, e.g. ``Refunds > Timing``, is what a citation names), blank
lines make paragraphs, and a section longer than CHUNK_MAX_WORDS is cut at paragraph (then sentence)
boundaries. Chunks never span two sections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from botctl.knowledge.parse import Block
from botctl.knowledge.text import split_sentences

CHUNK_MIN_WORDS = 80
CHUNK_MAX_WORDS = 250
CHUNK_TARGET_WORDS = 180
HEADING_WEIGHT = 2  # a word of the section's heading path counts as much as two in its text


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
            cost = (
                best[j]
                + (size - target) ** 2
                + (10 * (CHUNK_MIN_WORDS - size) ** 2 if size < CHUNK_MIN_WORDS else 0)
            )
            if cost < best[i]:
                best[i], cut[i] = cost, j
    chunks: list[str] = []
    i = len(units)
    while i > 0:
        chunks.append("\n\n".join(units[cut[i] : i]))
        i = cut[i]
    return chunks[::-1]
