"""The MCP path against the action API it wraps, same daemon, same run, same load generator.

    action API: POST /v1/workspaces/acme/actions/stripe.list_my_subscriptions   {"params": {}}
    MCP:        POST /v1/workspaces/acme/mcp   tools/call stripe__list_my_subscriptions   (JSON-RPC)

Both carry the same identity token and end in the same run_action; the difference is the JSON-RPC layer
(edge relay + botctl.mcp.server) and the tool name mapping. Also the edge's and the provider's RSS after
the run (the hand-written layer adds no library to either).

    python bench/bench_mcp.py [--concurrency 16] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
from kit import (
    audit_intact,
    free_port,
    fresh_home,
    pct,
    posts_until,
    start_daemon,
    stop,
    stripe_workspace,
    visitor_token,
)


async def load(
    url: str, body: dict, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[list[float], int]:
    """`concurrency` clients POSTing `body` for `seconds`: (latencies of the successful answers — a 200
    that is neither a JSON-RPC error nor a tool error —, other answers)."""

    def good(r: httpx.Response) -> bool:
        return (
            r.status_code == 200 and "error" not in r.json() and not r.json().get("result", {}).get("isError")
        )

    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        runs = await asyncio.gather(
            *(posts_until(client, url, body, headers, stop_at, good) for _ in range(concurrency))
        )
    return [x for lat, _ in runs for x in lat], sum(n for _, n in runs)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    args = ap.parse_args()
    tmp, env = fresh_home("botctl-bench-mcp-")
    procs: list[subprocess.Popen] = []
    sb_port, edge_port = free_port(), free_port()

    try:
        _, rot = stripe_workspace(env, procs, sb_port)
        start_daemon(env, edge_port)

        def bearer(use: str | None) -> dict[str, str]:
            """The widget's token for the action API; the bot's (botctl_use "mcp") for the MCP endpoint."""
            token = visitor_token(rot, botctl_use=use) if use else visitor_token(rot)
            return {"Authorization": f"Bearer {token}"}

        edge = f"http://127.0.0.1:{edge_port}/v1/workspaces/acme"
        paths = (
            ("action API", f"{edge}/actions/stripe.list_my_subscriptions", {"params": {}}, bearer(None)),
            (
                "MCP tools/call",
                f"{edge}/mcp",
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "stripe__list_my_subscriptions", "arguments": {}},
                },
                bearer("mcp"),
            ),
        )
        for _, url, body, auth in paths:  # warm up
            asyncio.run(load(url, body, auth, 4, 1.0))
        rows = []
        for label, conc, secs in (
            (f"{args.concurrency} concurrent", args.concurrency, args.seconds),
            ("1 at a time", 1, args.seconds / 2),
        ):
            for name, url, body, auth in paths:
                lat, errors = asyncio.run(load(url, body, auth, conc, secs))
                rows.append(
                    {
                        "path": name,
                        "load": label,
                        "rps": len(lat) / secs,
                        "p50_ms": pct(lat, 50),
                        "p99_ms": pct(lat, 99),
                        "errors": errors,
                    }
                )
        state = json.loads((tmp / "home" / "run" / "state.json").read_text())
        rss = {name: rss_mb(state[name]["pid"]) for name in ("edge", "provider")}
        audit_ok = audit_intact(env)
    finally:
        stop(env, procs)
    by = {(r["path"], r["load"]): r for r in rows}
    quiet_api, quiet_mcp = by[("action API", "1 at a time")], by[("MCP tools/call", "1 at a time")]
    busy_api = by[("action API", f"{args.concurrency} concurrent")]
    busy_mcp = by[("MCP tools/call", f"{args.concurrency} concurrent")]
    print(f"# MCP benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores")
    print("\n| path | load | req/s | p50 ms | p99 ms | errors |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['path']} | {r['load']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
        )
    ratio = busy_mcp["rps"] / busy_api["rps"]
    added = quiet_mcp["p50_ms"] - quiet_api["p50_ms"]
    print(f"\nthroughput ratio under load (MCP / action API): {ratio:.2f}")
    print(f"added p50 latency, 1 at a time: {added:+.2f} ms")
    print(f"RSS after the run: edge {rss['edge']:.0f} MB, provider {rss['provider']:.0f} MB")
    print(f"audit chain after the run: {'intact' if audit_ok else 'BROKEN'}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seconds": args.seconds,
                    "concurrency": args.concurrency,
                    "rows": rows,
                    "throughput_ratio": ratio,
                    "added_p50_ms": added,
                    "rss_mb": rss,
                    "audit_intact": audit_ok,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
