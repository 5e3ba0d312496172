"""Optional LLM phrasing (``BOTCTL_LLM_URL``, OpenAI-compatible): the model words the answer from the
retrieved passages only, and its reply is used only if it cites nothing but those passages and states
no number they do not hold. Any error or doubt: None, and the extractive answer stands.

httpx is imported inside the calls: nothing here weighs on the CLI's start-up.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from botctl.knowledge.text import MAX_QUESTION_CHARS

if TYPE_CHECKING:
    from botctl.knowledge.retrieve import Passage

LLM_SYSTEM_PROMPT = (
    "You answer questions from a business's website visitors, using ONLY the numbered passages you are "
    "given from the business's own help documents. Do not use any outside knowledge, do not guess, and "
    "do not add facts, numbers, prices, dates, links or promises that are not in the passages. Answer in "
    "at most three short sentences, in the visitor's language, and put the number of each passage you "
    "used in square brackets, like [1]. If the passages do not answer the question, reply exactly "
    "NOT_IN_PASSAGES."
)
_ANY_BRACKET_REF = re.compile(
    r"\[\s*(?:source|passage|doc(?:ument)?)?\s*#?\s*(\d+(?:\s*,\s*\d+)*)\s*\]", re.I
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _llm_endpoint(url: str) -> str:
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def _llm_request(question: str, passages: list[Passage]) -> tuple[str, dict[str, str], dict[str, Any], float]:
    numbered = "\n\n".join(
        f"[{i}] {p.title} — {p.section} ({p.document})\n{p.text}" for i, p in enumerate(passages, 1)
    )
    headers = {"Content-Type": "application/json"}
    key = os.environ.get("BOTCTL_LLM_API_KEY")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {
        "model": os.environ.get("BOTCTL_LLM_MODEL", "default"),
        "temperature": 0,
        "max_tokens": 400,
        "messages": [
            {"role": "system", "content": LLM_SYSTEM_PROMPT},
            {
                "role": "user",
                "content": f"Passages:\n\n{numbered}\n\nQuestion: {question[:MAX_QUESTION_CHARS]}",
            },
        ],
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


def _with_phrasing(result: dict[str, Any], phrased: tuple[str, list[int]] | None) -> dict[str, Any]:
    if phrased is None:
        return result
    text, cited = phrased
    return {**result, "answer": text, "citations": [result["citations"][i] for i in cited]}
