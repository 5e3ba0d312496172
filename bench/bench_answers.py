"""Actions while visitors ask questions: what knowledge answers cost the provider's other requests.

A real daemon (supervisor, provider, edge) on a home with Stripe connected through the sandbox and the
store help center of bench/knowledge_eval added (hybrid: FTS5 + the embedding model). Measured, in one
run, against itself:

* baseline: verified actions (`stripe.list_my_subscriptions`, a visitor's token) at --concurrency, alone;
* the same actions while --chatters visitors ask questions back to back (each question new: a counter
  in it, so no kept question vector helps), and the chat throughput meanwhile.

An answer is CPU work (the question's embedding, matrix products, FTS5); the provider looks it up on its
own thread (botctl/provider/answers.py), so the event loop that serves the actions goes on meanwhile.
Not a timed test: it reports, it does not assert.

    python bench/bench_answers.py [--concurrency 4] [--chatters 4] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from kit import (
    botctl,
    free_port,
    fresh_home,
    pct,
    posts_until,
    start_daemon,
    stop,
    stripe_workspace,
    visitor_token,
)

HERE = Path(__file__).resolve().parent
QUESTIONS = [
    "How long do I have to send something back",
    "Can I get my money back",
    "do you deliver to the USA",
    "my jacket arrived ripped",
    "how do I change my delivery address",
    "is there a student discount",
]


async def run(url: str, chat_url: str, headers: dict[str, str], conc: int, chatters: int, secs: float):  # noqa: ANN201
    """(action latencies in s, action errors, chat answers, chat errors)."""
    stop_at = time.perf_counter() + secs
    limits = httpx.Limits(max_connections=conc + chatters + 2, max_keepalive_connections=conc + chatters + 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def chat(i: int) -> tuple[int, int]:
            answered = errors = n = 0
            while time.perf_counter() < stop_at:
                n += 1
                q = f"{QUESTIONS[(i + n) % len(QUESTIONS)]} ({i}-{n})?"
                r = await client.post(chat_url, json={"message": q})
                if r.status_code == 200:
                    answered += 1
                else:
                    errors += 1
            return answered, errors

        acts = [posts_until(client, url, {"params": {}}, headers, stop_at) for _ in range(conc)]
        runs = await asyncio.gather(*acts, *(chat(i) for i in range(chatters)))
    acted, chatted = runs[:conc], runs[conc:]
    return (
        [x for lat, _ in acted for x in lat],
        sum(n for _, n in acted),
        sum(a for a, _ in chatted),
        sum(e for _, e in chatted),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--chatters", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    tmp, env = fresh_home("botctl-bench-answers-")
    env.pop("BOTCTL_KNOWLEDGE_DENSE", None)
    procs: list[subprocess.Popen] = []
    sb_port, edge_port = free_port(), free_port()

    try:
        _, rot = stripe_workspace(env, procs, sb_port)
        botctl(env, "knowledge", "add", "-w", "acme", str(HERE / "knowledge_eval" / "store" / "docs"))
        start_daemon(env, edge_port)
        headers = {"Authorization": f"Bearer {visitor_token(rot)}"}
        edge = f"http://127.0.0.1:{edge_port}/v1/workspaces/acme"
        url, chat_url = f"{edge}/actions/stripe.list_my_subscriptions", f"{edge}/chat"
        asyncio.run(run(url, chat_url, headers, 2, 2, 1.0))  # warm up (the model is loaded at start)
        alone = asyncio.run(run(url, chat_url, headers, args.concurrency, 0, args.seconds))
        loaded = asyncio.run(run(url, chat_url, headers, args.concurrency, args.chatters, args.seconds))
        state = json.loads((tmp / "home" / "run" / "state.json").read_text())
        assert state  # the daemon ran throughout
    finally:
        stop(env, procs)
    rows = []
    for label, (lat, errors, answered, chat_errors) in (
        ("actions alone", alone),
        (f"actions + {args.chatters} visitors asking", loaded),
    ):
        rows.append(
            {
                "load": label,
                "actions_per_s": len(lat) / args.seconds,
                "p50_ms": pct(lat, 50),
                "p99_ms": pct(lat, 99),
                "errors": errors,
                "answers_per_s": answered / args.seconds,
                "chat_errors": chat_errors,
            }
        )
    print(f"\n{args.concurrency} concurrent action clients, {args.seconds:.0f} s each\n")
    print(f"{'':36}{'actions/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'answers/s':>11}{'errors':>8}")
    for r in rows:
        print(
            f"{r['load']:36}{r['actions_per_s']:10.1f}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}"
            f"{r['answers_per_s']:11.1f}{r['errors'] + r['chat_errors']:8d}"
        )
    base, under = rows
    print(
        f"\nunder chat load: actions p50 {under['p50_ms'] / base['p50_ms']:.2f}x, p99 {under['p99_ms'] / base['p99_ms']:.2f}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "concurrency": args.concurrency}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
