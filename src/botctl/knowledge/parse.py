"""Parsers: a document's text (Markdown, plain text, HTML) → (title or None, blocks).

A block is ``("h", level, text)``, ``("p", 0, text)`` or ``("li", 0, text)``; chunk.py makes sections and
chunks of them. Pure functions of the text: reading files is files.py's job.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

Block = tuple[str, int, str]
_WS = re.compile(r"[ \t\r\f\v\u00a0]+")


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_REFLINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_MD_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_MD_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_MD_EMPH = re.compile(
    r"(\*\*|__)(\S(?:.*?\S)?)\1|(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])|(?<!\w)_(\S(?:.*?\S)?)_(?!\w)"
)
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
                lines = lines[i + 1 :]
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
_SKIP = frozenset(
    "script style nav noscript template svg iframe footer button select textarea object canvas".split()
)
_BREAK = frozenset(
    """p div section article main header aside blockquote pre table thead tbody tfoot tr ul ol dl
figure figcaption address details summary form fieldset legend hr body html caption""".split()
)
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
        hidden = (
            "hidden" in a
            or (a.get("aria-hidden") or "").lower() == "true"
            or (a.get("role") or "") == "navigation"
        )
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
            if (
                len(words) <= 12
                and len(line) <= 90
                and not _TXT_LIST.match(line)
                and (line[-1] not in ".,;:!" or line.isupper())
            ):
                blocks.append(("h", 2 if seen_heading or blocks else 1, line))
                seen_heading = True
                continue
        if all(_TXT_LIST.match(ln) for ln in lines):
            blocks.extend(("li", 0, _clean(_TXT_LIST.match(ln).group(1))) for ln in lines)  # type: ignore[union-attr]
            continue
        blocks.append(("p", 0, _clean(" ".join(lines))))
    return None, blocks
