"""The provider's knowledge answers run on their own thread (botctl/provider/answers.py): the event loop
goes on while one is looked up, the answer is the same as the library's, and the thread's work is
counted for /v1/status and the metrics."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from botctl import knowledge, workspaces
from botctl.provider.answers import THREAD_NAME, Answers

CORPUS = Path(__file__).parent / "data" / "knowledge"


@pytest.fixture
def acme(app, monkeypatch):
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "0")  # the thread is what is tested, not the model
    ws = workspaces.create(app, "acme", plan="pro")
    knowledge.add(app, ws, [CORPUS])
    return ws


def test_an_answer_is_looked_up_off_the_event_loop(app, acme):
    answers = Answers(app.home)
    question = "How long does standard shipping take?"
    try:
        gate = threading.Event()
        seen: list[str] = []
        answers._worker.submit(lambda: (seen.append(threading.current_thread().name), gate.wait(10)))

        async def main() -> dict:
            task = asyncio.create_task(answers.answer(acme, question, None))
            ticks = 0
            for _ in range(5):  # the loop keeps running while the answers thread is held
                await asyncio.sleep(0.01)
                ticks += 1
            # Inline, the answer would have been computed at the task's first step; it waits for the
            # thread instead.
            assert not task.done() and ticks == 5
            gate.set()
            return await task

        result = asyncio.run(main())
        assert seen and seen[0].startswith(THREAD_NAME)
        assert result == knowledge.answer(app.vault.conn, acme, question)
        assert result["grounded"] is True
        status = answers.status()
        assert status["answered"] == 2 and status["busy_seconds"] > 0  # the gate's job, then the answer
    finally:
        gate.set()
        answers.close()


def test_the_thread_reads_what_the_cli_adds_meanwhile(app, acme, tmp_path):
    """Its own connection is no snapshot: documents added after it opened are answered from."""
    answers = Answers(app.home)
    try:
        question = "Do you sell gift wrapping for llamas?"
        assert asyncio.run(answers.answer(acme, question, None))["grounded"] is False
        docs = tmp_path / "more"
        docs.mkdir()
        (docs / "llamas.md").write_text(
            "# Llamas\n\n## Gift wrapping for llamas\n\nWe sell gift wrapping for llamas.\n"
        )
        knowledge.add(app, acme, [docs])
        assert asyncio.run(answers.answer(acme, question, None))["grounded"] is True
    finally:
        answers.close()
