"""Visitors' thumbs up / down on the bot's answers, so the operator sees which questions it fails
(`botctl knowledge feedback -w WS`).

Nothing is stored when a question is asked. Each answer the provider gives carries an `answer_id`:
a MAC (a key derived from the vault's audit key, so ids outlive a restart) over the workspace, the time,
and the SHA-256 of the question and of the answer. A vote sends the id back with the question and the
answer as the widget showed them; the provider stores the vote only when both hashes match, so a vote
is always about a question really asked and an answer really given (no one can write other text into
the operator's list), at most one per answer (a second vote replaces the first), within MAX_AGE_S.

What is stored: the vote, the question, the answer, whether it was grounded, and the workspace's own
visitor id (the identity token's `sub`) when the visitor was signed in, else NULL. No email, no name,
no IP address.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from botctl import store

MAX_AGE_S = 7 * 24 * 3600
MAX_QUESTION = 2000
MAX_ANSWER = 8000
VOTES = ("up", "down")


class FeedbackRefused(Exception):
    """A vote that is not about an answer this workspace gave (bad or expired id, edited text)."""


def feedback_key(audit_key: bytes) -> bytes:
    return hmac.new(audit_key, b"botctl/v1|answer-feedback", hashlib.sha256).digest()


def _mac(key: bytes, workspace_id: str, ts: int, question: str, answer: str, grounded: bool) -> str:
    msg = "\n".join(
        [
            workspace_id,
            str(ts),
            hashlib.sha256(question.encode()).hexdigest(),
            hashlib.sha256(answer.encode()).hexdigest(),
            "1" if grounded else "0",
        ]
    )
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()[:32]


def answer_id(
    key: bytes, workspace_id: str, question: str, answer: str, grounded: bool, *, now: float | None = None
) -> str:
    ts = int(time.time() if now is None else now)
    return f"a1.{ts}.{int(grounded)}.{_mac(key, workspace_id, ts, question, answer, grounded)}"


def _verify(key: bytes, workspace_id: str, aid: str, question: str, answer: str) -> bool:
    """Whether `aid` was issued for this question and answer in this workspace, not too long ago; returns
    whether the answer was grounded."""
    parts = aid.split(".") if isinstance(aid, str) and len(aid) <= 80 else []
    if len(parts) != 4 or parts[0] != "a1" or not parts[1].isdigit() or parts[2] not in ("0", "1"):
        raise FeedbackRefused("not an answer id")
    ts, grounded = int(parts[1]), parts[2] == "1"
    if not 0 <= time.time() - ts <= MAX_AGE_S:
        raise FeedbackRefused("expired")
    if not hmac.compare_digest(parts[3], _mac(key, workspace_id, ts, question, answer, grounded)):
        raise FeedbackRefused("does not match")
    return grounded


def record(
    conn: sqlite3.Connection,
    key: bytes,
    ws: Any,
    aid: str,
    vote: str,
    question: str,
    answer: str,
    visitor: str | None,
) -> None:
    """Store (or replace) the vote on one answer. FeedbackRefused when it is not about an answer given."""
    if vote not in VOTES:
        raise FeedbackRefused("vote must be up or down")
    if (
        not isinstance(question, str)
        or not isinstance(answer, str)
        or len(question) > MAX_QUESTION
        or len(answer) > MAX_ANSWER
    ):
        raise FeedbackRefused("question or answer too long")
    grounded = _verify(key, ws.id, aid, question, answer)
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO answer_feedback (workspace_id, answer_id, vote, question, answer, grounded, visitor, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id, answer_id) DO UPDATE SET "
            "vote = excluded.vote, visitor = excluded.visitor, created_at = excluded.created_at",
            (
                ws.id,
                aid,
                vote,
                question,
                answer,
                int(grounded),
                (visitor or None) and str(visitor)[:200],
                store.now_iso(),
            ),
        )


@dataclass(frozen=True)
class QuestionVotes:
    question: str
    down: int
    up: int
    grounded: bool
    last_answer: str
    last_vote_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "down": self.down,
            "up": self.up,
            "grounded": self.grounded,
            "last_answer": self.last_answer,
            "last_vote_at": self.last_vote_at,
        }


def summary(
    conn: sqlite3.Connection, ws: Any, *, include_up: bool = False, limit: int = 100
) -> list[QuestionVotes]:
    """Questions with their votes, the most down-voted first (questions compared case- and
    space-insensitively). Without `include_up`, only questions with at least one down vote."""
    rows = conn.execute(
        "SELECT question, answer, vote, grounded, created_at FROM answer_feedback "
        "WHERE workspace_id = ? ORDER BY created_at",
        (ws.id,),
    ).fetchall()
    groups: dict[str, dict[str, Any]] = {}
    for question, answer, vote, grounded, at in rows:
        g = groups.setdefault(" ".join(question.lower().split()), {"question": question, "down": 0, "up": 0})
        g[vote] += 1
        g.update(grounded=bool(grounded), last_answer=answer, last_vote_at=at)
    out = [QuestionVotes(**g) for g in groups.values() if include_up or g["down"]]
    out.sort(key=lambda q: (-q.down, q.up, q.last_vote_at), reverse=False)
    return out[:limit]
