"""Answers: extractive, cited, or a calibrated "I don't know" that offers what the bot can do.

An answer is the best sentences of the best passages, with a citation (document + section) for each
passage used. It is given only when the best passage is grounded (retrieve.is_grounded: coverage of
the question and strength over MIN_COVERAGE / MIN_STRENGTH); otherwise the reply says, in plain words,
that it does not know, and offers a ticket when a ticket action is connected. With ``BOTCTL_LLM_URL``
set, phrase.py may reword it from the same passages.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import Executor
from typing import Any

from botctl.knowledge import hybrid
from botctl.knowledge.index import WorkspaceLike, _workspace
from botctl.knowledge.phrase import _phrase_with_llm, _phrase_with_llm_async, _with_phrasing
from botctl.knowledge.retrieve import CANDIDATES, Passage, _best_sentences, _join
from botctl.knowledge.text import query_terms, terms

# A further passage joins the answer only when it is nearly as good as the best one: by FTS5 alone, when
# it holds question words the best one lacks and scores at least SECOND_PASSAGE_RATIO of it; with the
# embedding model, when it is over the threshold too and its fused score within SECOND_FUSED_MARGIN of
# the best's ("Can I return a gift card?": the return window, and the gift cards' own section).
SECOND_PASSAGE_RATIO = 0.8
SECOND_FUSED_MARGIN = 0.1


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


def _grounded_answer(
    conn: sqlite3.Connection,
    ws: WorkspaceLike,
    question: str,
    available_actions: list[dict[str, Any]] | None,
    decision: list[hybrid.Decision] | None = None,
) -> tuple[dict[str, Any], list[Passage]]:
    """The extractive result, and the passages it cites (what an LLM may phrase from); the retrieval
    decision (both rankings, fused scores, threshold) is appended to `decision` when given."""
    w = _workspace(ws)
    question = question or ""
    q, good, why = hybrid.retrieve(conn, w.id, question, CANDIDATES)
    if decision is not None:
        decision.append(why)
    if not good:
        return _unknown(question, available_actions), []
    best = good[0]

    def pick(p: Passage, max_sentences: int = 3) -> tuple[list[str], set[str]]:
        lexical = _best_sentences(q, p, max_sentences=max_sentences)
        # The question's words all in the sentences picked by them: those are the answer. Otherwise (a
        # paraphrase, or a passage that names the words where it does not answer) the model picks.
        if why.dense and lexical[1] != {s for _, s in q.terms}:
            return hybrid.best_sentences(q, p, why.question_vector, why.matrix, max_sentences=max_sentences)
        return lexical

    sentences, covered = pick(best)
    used: list[tuple[Passage, list[str]]] = [(best, sentences)]
    uncovered = {s for _, s in q.terms} - covered
    fused = {r.passage.id: r.fused for r in why.ranked} if why.dense else {}
    for p in good[1:3] if why.dense else ():
        if fused.get(p.id, 0.0) < why.score - SECOND_FUSED_MARGIN:
            break
        if any((p.document, p.section) == (u.document, u.section) for u, _ in used):
            continue
        more, _ = pick(p, 2)
        if more and not set(more) & {x for _, s in used for x in s}:
            used.append((p, more))
    for p in good[1:3] if not why.dense else ():
        if sum(q.idf[s] for s in uncovered) < 0.2 * q.mass or p.score < SECOND_PASSAGE_RATIO * best.score:
            break
        if any((p.document, p.section) == (u.document, u.section) for u, _ in used):
            continue
        more, got = pick(p, 2)
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


def answer(
    conn: sqlite3.Connection,
    ws: WorkspaceLike,
    question: str,
    *,
    available_actions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A grounded answer from the workspace's documents, or a plain "I don't know" with what the bot can do.

    Returns ``{"answer", "grounded", "citations": [{"document", "section", "excerpt"}], "suggested_actions"}``.
    `ws`: a Workspace (anything with its ``id`` and ``name``: WorkspaceLike). `available_actions`: the
    workspace's action catalog entries (``{"name", "description", "customer_specific", ...}``, as the
    provider lists them); a ``*.create_ticket`` one is offered first when there is no answer. Never
    touches a credential.
    Blocking: SQLite, and the LLM call when ``BOTCTL_LLM_URL`` is set (async code: `answer_async`).
    """
    result, used = _grounded_answer(conn, ws, question, available_actions)
    if used and os.environ.get("BOTCTL_LLM_URL"):
        result = _with_phrasing(result, _phrase_with_llm(question, used))
    return result


def explain(conn: sqlite3.Connection, ws: WorkspaceLike, question: str) -> dict[str, Any]:
    """`answer` (extractive, no LLM) and why: ``{"result", "decision"}``, the decision holding the FTS5
    and dense rankings, the fused scores and the threshold decision (`botctl knowledge ask --explain`)."""
    why: list[hybrid.Decision] = []
    result, _ = _grounded_answer(conn, ws, question, None, why)
    return {"result": result, "decision": why[0].as_dict()}


async def answer_async(
    conn: sqlite3.Connection,
    ws: WorkspaceLike,
    question: str,
    *,
    available_actions: list[dict[str, Any]] | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """`answer` for an event loop: the optional LLM call is awaited (httpx.AsyncClient), so a slow model
    never blocks other requests. The lookup runs inline, or on `executor` when given (the provider's
    answers thread: botctl/provider/answers.py; `conn` is then that thread's alone)."""
    if executor is None:
        result, used = _grounded_answer(conn, ws, question, available_actions)
    else:
        loop = asyncio.get_running_loop()
        result, used = await loop.run_in_executor(
            executor, _grounded_answer, conn, ws, question, available_actions
        )
    if used and os.environ.get("BOTCTL_LLM_URL"):
        result = _with_phrasing(result, await _phrase_with_llm_async(question, used))
    return result
