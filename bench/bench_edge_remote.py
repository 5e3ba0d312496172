"""What the mutual-TLS link costs: the same verified action through the node's own edge (Unix socket to
the provider) and through an edge-only process reaching that provider over TCP + mutual TLS, one run.

    local:  client → edge → provider's Unix socket → sandbox
    remote: client → edge-only process (botctl edge start) → provider's TCP mTLS listener → sandbox

Both on loopback: the figure is the TLS and TCP overhead of the hop, not a network's latency.

    python bench/bench_edge_remote.py [--concurrency 16] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from kit import (
    action_load,
    audit_intact,
    botctl,
    free_port,
    fresh_home,
    pct,
    start_daemon,
    stop,
    stripe_workspace,
    visitor_token,
    wait_http,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    args = ap.parse_args()
    tmp, env = fresh_home("botctl-bench-edge-remote-")
    procs: list[subprocess.Popen] = []
    sb_port, edge_port, remote_port, provider_port = free_port(), free_port(), free_port(), free_port()

    try:
        _, rot = stripe_workspace(env, procs, sb_port)
        botctl(env, "cluster", "ca", "init")
        botctl(env, "cluster", "cert", "issue", "provider")
        edge_host = tmp / "edge-host"
        botctl(env, "cluster", "cert", "issue", "edge-1", "--out", str(edge_host))
        shutil.copy(tmp / "home" / "cluster" / "ca.crt", edge_host / "ca.crt")
        # One load generator is one IP and one visitor: the edges' rate limits are off for the measurement.
        start_daemon(env, edge_port, "--provider-listen", f"127.0.0.1:{provider_port}")
        edge_env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-m",
                    "botctld",
                    "--provider",
                    f"https://127.0.0.1:{provider_port}",
                    "--cert",
                    str(edge_host / "edge-1.crt"),
                    "--key",
                    str(edge_host / "edge-1.key"),
                    "--ca",
                    str(edge_host / "ca.crt"),
                    "--port",
                    str(remote_port),
                    "--ip-rate",
                    "0",
                    "--visitor-rate",
                    "0",
                ],
                env=edge_env,
                cwd="/",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_http(f"http://127.0.0.1:{remote_port}/healthz")
        headers = {"Authorization": f"Bearer {visitor_token(rot)}"}
        action = "/v1/workspaces/acme/actions/stripe.list_my_subscriptions"
        paths = (
            ("local edge (Unix socket)", f"http://127.0.0.1:{edge_port}{action}"),
            ("remote edge (TCP + mutual TLS)", f"http://127.0.0.1:{remote_port}{action}"),
        )
        for _, url in paths:
            asyncio.run(
                action_load(url, headers, 4, 1.0)
            )  # warm up (and open the kept-alive TLS connections)
        results, quiet = {}, {}
        for name, url in paths:
            n, lat, errors = asyncio.run(action_load(url, headers, args.concurrency, args.seconds))
            results[name] = (n / args.seconds, pct(lat, 50), pct(lat, 99), errors)
        for name, url in paths:
            n, lat, errors = asyncio.run(action_load(url, headers, 1, args.seconds / 2))
            quiet[name] = (n / (args.seconds / 2), pct(lat, 50), pct(lat, 99), errors)
        audit_ok = audit_intact(env)
    finally:
        stop(env, procs)
        shutil.rmtree(tmp, ignore_errors=True)
    (lname, lq), (rname, rq) = list(quiet.items())
    ratio = results[rname][0] / results[lname][0]
    print(
        f"# edge-remote benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
        f"{args.seconds:.0f} s per path under load"
    )
    print("\n| path | load | req/s | p50 ms | p99 ms | errors |\n|---|---|---:|---:|---:|---:|")
    rows = [
        {"path": name, "load": label, "rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors}
        for label, table in ((f"{args.concurrency} concurrent", results), ("1 at a time", quiet))
        for name, (rps, p50, p99, errors) in table.items()
    ]
    for r in rows:
        print(
            f"| {r['path']} | {r['load']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
        )
    print(f"\nthroughput ratio under load (remote / local): {ratio:.2f}")
    print(f"added p50 latency, 1 at a time: {rq[1] - lq[1]:+.2f} ms")
    print(f"audit chain after the run: {'intact' if audit_ok else 'BROKEN'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seconds": args.seconds,
                    "concurrency": args.concurrency,
                    "rows": rows,
                    "throughput_ratio": ratio,
                    "added_p50_ms": rq[1] - lq[1],
                    "audit_intact": audit_ok,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
