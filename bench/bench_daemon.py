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
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def load(
    url: str, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                r = await client.post(url, json={"params": {}}, headers=headers)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, errors


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) >= 100 else max(values) * 1000
    )


def stripe_workspace(py: str, env: dict[str, str], procs: list, sb_port: int, botctl) -> tuple[str, dict]:  # noqa: ANN001
    """The sandbox on `sb_port` (its process added to `procs`), workspace acme on the pro plan with Stripe
    connected by the sandbox's key, and a fresh identity key: (that Stripe key, `identity rotate --json`)."""
    sandbox = f"http://127.0.0.1:{sb_port}"
    procs.append(
        subprocess.Popen(
            [py, "-m", "botctl", "sandbox", "serve", "--port", str(sb_port), "-q"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    wait_http(sandbox + "/_sandbox/stats")
    key = httpx.get(sandbox + "/_sandbox/credentials").json()["stripe"]["api_key"]
    botctl("workspace", "create", "acme", "--plan", "pro")
    botctl("connect", "stripe", "-w", "acme", "--sandbox", sandbox, "--api-key-stdin", input=key + "\n")
    return key, json.loads(botctl("identity", "rotate", "-w", "acme", "--json"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    args = ap.parse_args()
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="botctl-bench-daemon-"))
    env = {
        **os.environ,
        "BOTCTL_HOME": str(tmp / "home"),
        "BOTCTL_NO_KEYRING": "1",
        "BOTCTL_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    procs: list[subprocess.Popen] = []
    sb_port, edge_port, proxy_port = free_port(), free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sb_port}"

    def botctl(*a: str, input: str | None = None) -> str:
        return subprocess.run(
            [py, "-m", "botctl", *a], env=env, input=input, capture_output=True, text=True, check=True
        ).stdout

    try:
        key, rot = stripe_workspace(py, env, procs, sb_port, botctl)
        # The edge's per-IP/per-visitor limits protect a real deployment; the load generator is one IP and
        # one visitor, so this measurement turns them off.
        botctl("daemon", "start", "--port", str(edge_port), "--ip-rate", "0", "--visitor-rate", "0")
        procs.append(
            subprocess.Popen(
                [
                    py,
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
        import jwt

        now = int(time.time())
        token = jwt.encode(
            {"sub": "u-ada", "email": "ada@example.com", "aud": "acme", "iat": now, "exp": now + 3000},
            rot["secret"],
            algorithm="HS256",
            headers={"kid": rot["kid"]},
        )
        verified_url = f"http://127.0.0.1:{edge_port}/v1/workspaces/acme/actions/stripe.list_my_subscriptions"
        bare_url = f"http://127.0.0.1:{proxy_port}/proxy"
        asyncio.run(load(verified_url, {"Authorization": f"Bearer {token}"}, 4, 1.0))  # warm up
        asyncio.run(load(bare_url, {}, 4, 1.0))
        results, quiet = {}, {}
        paths = (
            ("bare pass-through", bare_url, {}),
            ("verified action", verified_url, {"Authorization": f"Bearer {token}"}),
        )
        for name, url, headers in paths:  # throughput: the machine saturated by the load generator
            n, lat, errors = asyncio.run(load(url, headers, args.concurrency, args.seconds))
            results[name] = (n / args.seconds, pct(lat, 50), pct(lat, 99), errors)
        for name, url, headers in paths:  # latency: one request at a time, nothing queued
            n, lat, errors = asyncio.run(load(url, headers, 1, args.seconds / 2))
            quiet[name] = (n / (args.seconds / 2), pct(lat, 50), pct(lat, 99), errors)
        audit_ok = (
            subprocess.run([py, "-m", "botctl", "audit", "verify"], env=env, capture_output=True).returncode
            == 0
        )
    finally:
        subprocess.run([py, "-m", "botctl", "daemon", "stop"], env=env, capture_output=True)
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
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
