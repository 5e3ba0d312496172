"""What the daemon benchmarks share (bench_daemon, bench_mcp, bench_answers, bench_edge_remote, bench_refresh,
bench_nodes): a fresh home's environment, botctl run as a command, the vendor sandbox with workspace acme and
Stripe connected, the daemon started with its rate limits off and stopped, a visitor's identity token, a
load generator of actions, free ports, waiting for a listener, percentiles.

Imported by the scripts as `kit` (each script's directory is on sys.path when it runs as
`python bench/bench_X.py`)."""

from __future__ import annotations

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
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    """Return once `url` answers anything below 500; exit the benchmark if it does not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile of `values` (seconds) in milliseconds; the maximum below 100 values."""
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) >= 100 else max(values) * 1000
    )


def fresh_home(prefix: str) -> tuple[Path, dict[str, str]]:
    """A new temporary directory and the environment of a home in it (`<dir>/home`, no keyring, a random
    master key in BOTCTL_MASTER_KEY): (the directory, the environment)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    env = {
        **os.environ,
        "BOTCTL_HOME": str(tmp / "home"),
        "BOTCTL_NO_KEYRING": "1",
        "BOTCTL_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    return tmp, env


def botctl(env: dict[str, str], *args: str, input: str | None = None, timeout: float | None = None) -> str:
    """`python -m botctl *args` with `env` (and `input` on stdin): its stdout; a non-zero exit ends the
    benchmark with the command and the end of its stderr."""
    p = subprocess.run(
        [sys.executable, "-m", "botctl", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if p.returncode != 0:
        raise SystemExit(f"botctl {' '.join(args)} failed: {p.stderr[-1500:]}")
    return p.stdout


def start_sandbox(env: dict[str, str], port: int, procs: list, *extra: str) -> str:
    """`botctl sandbox serve` on `port` (`extra`: more options, e.g. --auto-approve), its process added to
    `procs`; returns its URL once it answers."""
    url = f"http://127.0.0.1:{port}"
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "botctl", "sandbox", "serve", "--port", str(port), "-q", *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    wait_http(url + "/_sandbox/stats")
    return url


def stripe_workspace(env: dict[str, str], procs: list, sb_port: int) -> tuple[str, dict]:
    """The sandbox on `sb_port` (its process added to `procs`), workspace acme on the pro plan with Stripe
    connected by the sandbox's key, and a fresh identity key: (that Stripe key, `identity rotate --json`)."""
    sandbox = start_sandbox(env, sb_port, procs)
    key = httpx.get(sandbox + "/_sandbox/credentials").json()["stripe"]["api_key"]
    botctl(env, "workspace", "create", "acme", "--plan", "pro")
    botctl(env, "connect", "stripe", "-w", "acme", "--sandbox", sandbox, "--api-key-stdin", input=key + "\n")
    return key, json.loads(botctl(env, "identity", "rotate", "-w", "acme", "--json"))


def start_daemon(env: dict[str, str], port: int, *extra: str, timeout: float | None = None) -> str:
    """`botctl daemon start` with its edge on `port` and the per-IP and per-visitor rate limits off (a load
    generator is one IP and one visitor; the limits protect a real deployment); `extra`: more options.
    Returns its stdout."""
    return botctl(
        env,
        "daemon",
        "start",
        "--port",
        str(port),
        "--ip-rate",
        "0",
        "--visitor-rate",
        "0",
        *extra,
        timeout=timeout,
    )


def stop(env: dict[str, str], procs: list[subprocess.Popen]) -> None:
    """`botctl daemon stop` (whatever it says), then terminate `procs` and wait for each."""
    subprocess.run([sys.executable, "-m", "botctl", "daemon", "stop"], env=env, capture_output=True)
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def visitor_token(rot: dict, ttl: int = 3000, **claims: str) -> str:
    """A visitor's identity token (u-ada of workspace acme, HS256) signed with the key `identity rotate
    --json` returned, valid `ttl` s; `claims`: more claims (e.g. botctl_use="mcp")."""
    import jwt

    now = int(time.time())
    body = {"sub": "u-ada", "email": "ada@example.com", "aud": "acme", "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(body, rot["secret"], algorithm="HS256", headers={"kid": rot["kid"]})


def audit_intact(env: dict[str, str]) -> bool:
    """Whether `botctl audit verify` passes on the home of `env`."""
    return (
        subprocess.run(
            [sys.executable, "-m", "botctl", "audit", "verify"], env=env, capture_output=True
        ).returncode
        == 0
    )


async def posts_until(
    client: httpx.AsyncClient,
    url: str,
    body: dict,
    headers: dict[str, str],
    stop_at: float,
    good: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> tuple[list[float], int]:
    """One client's POSTs of `body` to `url`, back to back until `stop_at` (perf_counter): (latencies in s
    of the answers `good` accepts, how many others)."""
    latencies: list[float] = []
    others = 0
    while time.perf_counter() < stop_at:
        t = time.perf_counter()
        r = await client.post(url, json=body, headers=headers)
        if good(r):
            latencies.append(time.perf_counter() - t)
        else:
            others += 1
    return latencies, others


async def action_load(
    url: str, headers: dict[str, str], concurrency: int, seconds: float
) -> tuple[int, list[float], int]:
    """`concurrency` clients POSTing `{"params": {}}` to `url` back to back for `seconds`: (requests answered
    200, their latencies in s, other answers)."""
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        runs = await asyncio.gather(
            *(posts_until(client, url, {"params": {}}, headers, stop_at) for _ in range(concurrency))
        )
    latencies = [x for lat, _ in runs for x in lat]
    return len(latencies), latencies, sum(n for _, n in runs)
