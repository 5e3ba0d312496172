"""Verified actions per second with 1 and 2 nodes on one PostgreSQL, in the same run (issue #15).

Two full nodes (each supervisor, provider, edge; own home; same database and master key), one sandbox.
Closed-loop load on a read action (zendesk.list_my_tickets): first through node 1 alone, then round robin
over both edges. Besides the rate it reports the CPU seconds the nodes' providers and edges spent per
action (from /proc), the figure the paper model in docs/deployment.md extrapolates from. On a 2-core
machine the load generator, the sandbox, PostgreSQL and both nodes share the cores: the 2-node figure
shows the overhead of a second node, not scaling.

    python bench/bench_nodes.py [--seconds S] [--concurrency N] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from bench_postgres import database  # noqa: E402
from kit import botctl, free_port, start_daemon, visitor_token  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def load(ports: list[int], token: str, seconds: float, concurrency: int) -> tuple[int, int]:
    stop = time.monotonic() + seconds
    ok = errors = 0
    lock = threading.Lock()

    def worker(i: int) -> None:
        nonlocal ok, errors
        port = ports[i % len(ports)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            n = i
            while time.monotonic() < stop:
                p = ports[n % len(ports)] if len(ports) > 1 else port
                r = c.post(
                    f"http://127.0.0.1:{p}/v1/workspaces/acme/actions/zendesk.list_my_tickets",
                    json={"params": {}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                n += 1
                with lock:
                    if r.status_code == 200:
                        ok += 1
                    else:
                        errors += 1

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return ok, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    from botctl.sandbox.testing import running_sandbox

    key = base64.b64encode(secrets.token_bytes(32)).decode()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-nodes-{secrets.token_hex(4)}"
    with database() as url, running_sandbox() as sb:
        nodes = []
        for i in (1, 2):
            env = {
                **os.environ,
                "BOTCTL_HOME": str(tmp / f"node-{i}"),
                "BOTCTL_NO_KEYRING": "1",
                "BOTCTL_MASTER_KEY": key,
                "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "daemon")]),
            }
            env.pop("BOTCTL_DATABASE_URL", None)
            botctl(env, "init", "--database", url, "--node", f"node-{i}", timeout=120)
            nodes.append({"env": env, "port": free_port()})
        e1 = nodes[0]["env"]
        botctl(e1, "workspace", "create", "acme", "--plan", "pro", timeout=120)
        rot = json.loads(botctl(e1, "identity", "rotate", "-w", "acme", "--json", timeout=120))
        botctl(
            e1,
            "connect",
            "zendesk",
            "-w",
            "acme",
            "--sandbox",
            sb.url,
            "--subdomain",
            "acme",
            "--access-token-stdin",
            input=sb.credentials()["zendesk"]["access_token"] + "\n",
            timeout=120,
        )
        token = visitor_token(rot, ttl=3600)
        pids = []
        try:
            for n in nodes:
                out = json.loads(
                    start_daemon(
                        n["env"], n["port"], "--metrics-port", str(free_port()), "--json", timeout=120
                    )
                )
                n["pids"] = [out["provider_pid"], out["edge_pid"]]
                pids += n["pids"]
            load([nodes[0]["port"], nodes[1]["port"]], token, 2.0, 4)  # warm both nodes
            result = {"seconds": args.seconds, "concurrency": args.concurrency}
            for label, ports in (("1 node", [nodes[0]["port"]]), ("2 nodes", [n["port"] for n in nodes])):
                before = {p: cpu_s(p) for p in pids}
                t0 = time.monotonic()
                ok, errors = load(ports, token, args.seconds, args.concurrency)
                took = time.monotonic() - t0
                spent = {p: cpu_s(p) - before[p] for p in pids}
                node_cpu = [sum(spent[p] for p in n["pids"]) for n in nodes]
                result[label] = {
                    "ok": ok,
                    "errors": errors,
                    "rps": round(ok / took, 1),
                    "cpu_ms_per_action": round(1000 * sum(node_cpu) / max(ok, 1), 2),
                    "node_cpu_s": [round(c, 2) for c in node_cpu],
                }
        finally:
            for n in nodes:
                subprocess.run(
                    [sys.executable, "-m", "botctl", "daemon", "stop"],
                    env=n["env"],
                    capture_output=True,
                    timeout=60,
                )
    one, two = result["1 node"], result["2 nodes"]
    print(
        "| nodes | actions/s | errors | CPU ms per action (providers + edges) | CPU s per node |\n|---|---:|---:|---:|---|"
    )
    for label in ("1 node", "2 nodes"):
        r = result[label]
        print(f"| {label} | {r['rps']} | {r['errors']} | {r['cpu_ms_per_action']} | {r['node_cpu_s']} |")
    print(
        f"\n2 nodes / 1 node: {two['rps'] / max(one['rps'], 0.1):.2f} (on {os.cpu_count()} cores: overhead, not scaling)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
