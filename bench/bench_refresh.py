"""Refresh storm: many callers find the same OAuth access token due at once.

A real OAuth connection (Zendesk, authorization code + PKCE through the sandbox's authorization
server) is refreshed by
    baseline: one caller, alone (median of --singles runs)
    storm:    --callers concurrent callers in one process (the provider's case)
    procs:    --procs processes x --callers/--procs callers each, released at the same instant
and the sandbox counts the refresh_token grants it answered. Target (issue #4): one token request per
storm, however many callers; the storm's wall time close to a single refresh's.

    python bench/bench_refresh.py [--callers 200] [--procs 4] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
from kit import audit_intact, botctl, free_port, fresh_home, start_sandbox

CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    from botctl import connections, oauth, workspaces
    from botctl.session import Session
    from botctl.home import Home

    app = Session(Home(Path(sys.argv[1])), create=False)
    ws = workspaces.get(app.vault.conn, "acme")
    conn = connections.get(app.vault.conn, ws, "zendesk")
    n, start = int(sys.argv[2]), float(sys.argv[3])
    while time.time() < start:
        time.sleep(0.0005)

    async def herd():
        return await asyncio.gather(*(oauth.refresh(app, ws, conn, force=True) for _ in range(n)))

    print(sorted({c.token_generation for c in asyncio.run(herd())}), flush=True)
""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--callers", type=int, default=200)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--singles", type=int, default=5)
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    args = ap.parse_args()
    tmp, env = fresh_home("botctl-bench-refresh-")
    os.environ.update({k: env[k] for k in ("BOTCTL_HOME", "BOTCTL_NO_KEYRING", "BOTCTL_MASTER_KEY")})
    sandbox_procs: list[subprocess.Popen] = []
    try:
        sandbox = start_sandbox(env, free_port(), sandbox_procs, "--auto-approve")
        from botctl import connections, oauth, workspaces
        from botctl.demo import oauth_connect_via_sandbox
        from botctl.home import Home
        from botctl.session import Session

        botctl(env, "workspace", "create", "acme", "--plan", "pro")
        oauth_connect_via_sandbox(env, sandbox, "zendesk", "acme", "--subdomain", "acme")
        home = Home(tmp / "home")
        app = Session(home, create=False)
        ws = workspaces.get(app.vault.conn, "acme")

        def grants() -> int:
            stats = httpx.get(sandbox + "/_sandbox/stats", timeout=5).json()
            return stats.get("token_grants", {}).get("zendesk", {}).get("refresh_token", 0)

        def conn():
            return connections.get(app.vault.conn, ws, "zendesk")

        singles = []
        for _ in range(args.singles):
            c = conn()
            t = time.perf_counter()
            asyncio.run(oauth.refresh(app, ws, c, force=True))
            singles.append((time.perf_counter() - t) * 1000)
        single_ms = statistics.median(singles)

        c, before = conn(), grants()

        async def herd():
            return await asyncio.gather(*(oauth.refresh(app, ws, c, force=True) for _ in range(args.callers)))

        t = time.perf_counter()
        results = asyncio.run(herd())
        storm_ms = (time.perf_counter() - t) * 1000
        storm_requests = grants() - before
        storm_generations = sorted({r.token_generation for r in results})

        before = grants()
        start = time.time() + 2.0
        per = args.callers // args.procs
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(home.path), str(per), str(start)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.procs)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        ended = time.time()
        if any(p.returncode for p in procs):
            raise SystemExit("a storm process failed: " + " | ".join(o[1].strip()[-300:] for o in outs))
        procs_ms = (ended - start) * 1000
        procs_requests = grants() - before
        procs_generations = sorted({g for o in outs for g in json.loads(o[0].strip())})
        audit_ok = audit_intact(env)
        app.close()
    finally:
        for sb in sandbox_procs:
            sb.terminate()
            sb.wait(timeout=10)
    rows = [
        {"case": "1 caller (baseline)", "callers": 1, "token_requests": 1, "ms": single_ms},
        {
            "case": f"{args.callers} concurrent callers, 1 process",
            "callers": args.callers,
            "token_requests": storm_requests,
            "ms": storm_ms,
            "generations": storm_generations,
        },
        {
            "case": f"{args.callers} callers in {args.procs} processes",
            "callers": per * args.procs,
            "token_requests": procs_requests,
            "ms": procs_ms,
            "generations": procs_generations,
        },
    ]
    print(f"# refresh storm — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores\n")
    print("| case | callers | token requests | wall ms | x baseline |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['callers']} | {r['token_requests']} | {r['ms']:.1f} | {r['ms'] / single_ms:.2f} |"
        )
    print(f"\naudit chain after the storms: {'intact' if audit_ok else 'BROKEN'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "audit_intact": audit_ok}, indent=2))


if __name__ == "__main__":
    main()
