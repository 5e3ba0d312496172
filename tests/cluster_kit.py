"""What the tests share: botctl run as a command (`sh`), a free port, SQL on a PostgreSQL database; and for
the cluster tests (test_cluster, test_cluster_chaos, test_cluster_fence): nodes joined to the shared database
and started, waiting for a condition."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

WS = "acme"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(env: dict, *args: str, input: str | None = None, check: bool = True, timeout: float = 90):
    """`python -m botctl *args` with `env` (and `input` on stdin), output captured as text; with `check`,
    an AssertionError naming the command and its stderr when it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"botctl {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def sql(url: str, statement: str, *params):
    with psycopg.connect(url, autocommit=True) as c:
        cur = c.execute(statement, params or None)
        return cur.fetchall() if cur.description else None


def join_nodes(
    root: Path, url: str, master_key: str, count: int = 2, **env: str
) -> list[tuple[str, Path, dict]]:
    """`count` homes under `root` joined to the database at `url` as node-1, node-2, … (`init --database
    --node`), sharing one master key; `env`: more variables for every node (BOTCTL_NODE_LAPSE_S, …).
    Returns (name, home, environment) per node."""
    out = []
    for i in range(1, count + 1):
        home = root / f"node-{i}"
        node_env = {
            **os.environ,
            "BOTCTL_HOME": str(home),
            "BOTCTL_NO_KEYRING": "1",
            "BOTCTL_MASTER_KEY": master_key,
            **env,
        }
        node_env.pop("BOTCTL_DATABASE_URL", None)
        sh(node_env, "init", "--database", url, "--node", f"node-{i}")
        out.append((f"node-{i}", home, node_env))
    return out


def daemon_start_args(port: int, *extra: str) -> list[str]:
    """`daemon start` on `port` with a metrics port of its own and no rate limit (the tests' load is the point)."""
    return [
        "daemon",
        "start",
        "--port",
        str(port),
        "--metrics-port",
        str(free_port()),
        "--ip-rate",
        "0",
        "--visitor-rate",
        "0",
        *extra,
    ]


def until(pred, timeout: float, what: str, state=None, every: float = 0.05):  # noqa: ANN001
    """Wait for `pred()` to be true (returns its value); on timeout fail naming `what` (and `state()`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}" + (f": {state()}" if state else ""))


def ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
