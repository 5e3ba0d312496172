"""The verified-action path against a bare pass-through, same machine, same run, same load generator.

    verified: client → edge → provider (identity JWT check, plan, connection, params, decrypt,
              vendor calls, durable group-committed audit) → sandbox
    bare:     client → pass-through proxy (no checks) → sandbox (the same two vendor calls)

Prints throughput and p50/p99 latency of both, and their ratio. Target (issue #5): at least 50% of
the bare pass-through's throughput, and at most 2 ms added p50 latency.

    python bench/bench_daemon.py [--concurrency 16] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kit import (
    action_load,
    audit_intact,
    free_port,
    fresh_home,
    pct,
    start_daemon,
    stop,
    stripe_workspace,
    visitor_token,
    wait_http,
)

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    args = ap.parse_args()
    _, env = fresh_home("botctl-bench-daemon-")
    procs: list[subprocess.Popen] = []
    sb_port, edge_port, proxy_port = free_port(), free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sb_port}"

    try:
        key, rot = stripe_workspace(env, procs, sb_port)
        start_daemon(env, edge_port)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "passthrough.py"),
                    "--port",
                    str(proxy_port),
                    "--sandbox",
                    sandbox,
                    "--key-env",
                    "BENCH_STRIPE_KEY",
                ],
                env={**env, "BENCH_STRIPE_KEY": key},
            )
        )
        wait_http(f"http://127.0.0.1:{proxy_port}/nope")
        token = visitor_token(rot)
        verified_url = f"http://127.0.0.1:{edge_port}/v1/workspaces/acme/actions/stripe.list_my_subscriptions"
        bare_url = f"http://127.0.0.1:{proxy_port}/proxy"
        asyncio.run(action_load(verified_url, {"Authorization": f"Bearer {token}"}, 4, 1.0))  # warm up
        asyncio.run(action_load(bare_url, {}, 4, 1.0))
        results, quiet = {}, {}
        paths = (
            ("bare pass-through", bare_url, {}),
            ("verified action", verified_url, {"Authorization": f"Bearer {token}"}),
        )
        for name, url, headers in paths:  # throughput: the machine saturated by the load generator
            n, lat, errors = asyncio.run(action_load(url, headers, args.concurrency, args.seconds))
            results[name] = (n / args.seconds, pct(lat, 50), pct(lat, 99), errors)
        for name, url, headers in paths:  # latency: one request at a time, nothing queued
            n, lat, errors = asyncio.run(action_load(url, headers, 1, args.seconds / 2))
            quiet[name] = (n / (args.seconds / 2), pct(lat, 50), pct(lat, 99), errors)
        audit_ok = audit_intact(env)
    finally:
        stop(env, procs)
    b, v = results["bare pass-through"], results["verified action"]
    qb, qv = quiet["bare pass-through"], quiet["verified action"]
    print(
        f"# daemon benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
        f"{args.seconds:.0f} s per path under load"
    )
    print("\n| path | load | req/s | p50 ms | p99 ms | errors |\n|---|---|---:|---:|---:|---:|")
    for label, table in ((f"{args.concurrency} concurrent", results), ("1 at a time", quiet)):
        for name, (rps, p50, p99, errors) in table.items():
            print(f"| {name} | {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {errors} |")
    print(f"\nthroughput ratio under load (verified / bare): {v[0] / b[0]:.2f}  (target >= 0.50)")
    print(f"added p50 latency, 1 at a time: {qv[1] - qb[1]:+.2f} ms  (target <= 2 ms)")
    print(f"audit chain after the run: {'intact' if audit_ok else 'BROKEN'}")
    if args.json:
        rows = [
            {"path": name, "load": label, "rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors}
            for label, table in ((f"{args.concurrency} concurrent", results), ("1 at a time", quiet))
            for name, (rps, p50, p99, errors) in table.items()
        ]
        Path(args.json).write_text(
            json.dumps(
                {
                    "seconds": args.seconds,
                    "concurrency": args.concurrency,
                    "rows": rows,
                    "throughput_ratio": v[0] / b[0],
                    "added_p50_ms": qv[1] - qb[1],
                    "audit_intact": audit_ok,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
