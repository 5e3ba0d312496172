"""What the widget's issue #20 work costs a chat answer: what the provider now adds to each (each source's
title and help-center URL, the MAC'd answer id a vote refers to), timed on its own, against the answer
itself in the same run; and the size of the script visitors download.

    python bench/bench_widget.py [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "How long do refunds take?",
    "Do you ship to Canada?",
    "How do I reset my password?",
    "Can I pay with seashells at your Mars store?",
    "Where is VAT shown on my invoice?",
    "How long does standard shipping take?",
]


def _median_us(fn, rounds: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for q in QUESTIONS:
            fn(q)
        times.append((time.perf_counter() - t) * 1e6 / len(QUESTIONS))
    return statistics.median(times)


def bench_answers(rounds: int) -> list[dict]:
    from botctl import feedback, knowledge, workspaces
    from botctl.home import Home
    from botctl.knowledge.links import cite
    from botctl.session import Session

    with Session(Home(Path(os.environ["BOTCTL_HOME"]))) as app:
        ws = workspaces.create(app, "acme")
        knowledge.add(
            app, ws, [str(REPO / "tests" / "data" / "knowledge")], url_base="https://help.acme.test/articles"
        )
        conn = app.vault.conn
        key = feedback.feedback_key(app.vault.audit_key())

        answers = {q: knowledge.answer(conn, ws, q) for q in QUESTIONS}  # warms caches too

        def bare(q: str) -> None:
            knowledge.answer(conn, ws, q)

        def added(q: str) -> None:  # what the provider now does besides answering
            r = answers[q]
            cite(conn, ws.id, r["citations"])
            feedback.answer_id(key, ws.id, q, r["answer"], r["grounded"])

        rows = [
            ("knowledge.answer (baseline)", _median_us(bare, max(3, rounds // 50))),
            ("added: titles/URLs (cite) + answer id", _median_us(added, rounds)),
        ]
    base = rows[0][1]
    return [{"name": n, "us": us, "ratio": us / base} for n, us in rows]


def bundle_size() -> dict:
    sys.path.insert(0, str(REPO / "daemon"))
    from botctld.widget_bundle import PARTS, bundle

    b = bundle()
    return {"bytes": len(b), "gzip": len(gzip.compress(b, 9, mtime=0)), "parts": len(PARTS)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    os.environ["BOTCTL_NO_KEYRING"] = "1"
    os.environ["BOTCTL_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory(prefix="botctl-bench-widget-") as tmp:
        os.environ["BOTCTL_HOME"] = tmp
        out = {"answers": bench_answers(args.rounds), "script": bundle_size()}
    for row in out["answers"]:
        print(f"{row['name']:<45} {row['us']:9.1f} us  {row['ratio']:6.2f}x")
    s = out["script"]
    print(f"widget.js: {s['bytes']:,} bytes, {s['gzip']:,} gzipped, {s['parts']} parts")
    if args.json:
        Path(args.json).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
