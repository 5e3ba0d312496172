"""PostgreSQL next to SQLite, same machine, same run (issue #14): SQLite is the baseline of every figure.

* audit append: one record per transaction (what a CLI command does), and batches of 100 (what the
  daemon's group committer does); 4 processes appending at once (the chain's lock under contention);
* audit verify: records/s over the whole chain;
* the verified action path: bench/bench_daemon.py run once on each backend (req/s and p50 under load);
* CLI start-up: `botctl workspace list --json` on a SQLite home (must not move: no driver imported) and on
  a PostgreSQL home (pays for psycopg's import and a connection).

Needs the PostgreSQL server at 127.0.0.1:5432 (user postgres); makes and drops its own databases.

    python bench/bench_postgres.py [--records N] [--seconds S] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ADMIN = os.environ.get("BOTCTL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def database():
    import psycopg

    name = f"botctl_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def env_for(home: Path, url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "BOTCTL_HOME": str(home),
        "BOTCTL_NO_KEYRING": "1",
        "BOTCTL_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "PYTHONPATH": str(REPO / "src"),
    }
    env.pop("BOTCTL_DATABASE_URL", None)
    if url:
        env["BOTCTL_DATABASE_URL"] = url
    return env


APPEND = """
import sys, time
from botctl.session import Session
from botctl.audit import make_record
from botctl.home import Home
n, batch = int(sys.argv[1]), int(sys.argv[2])
start_at = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
with Session(Home.resolve(None)) as a:
    a.vault.audit_key()
    a.audit("bench.warm")
    while time.time() < start_at:  # the concurrent run: every writer starts at once, imports done
        time.sleep(0.001)
    t = time.perf_counter()
    for i in range(0, n, batch):
        recs = [make_record("bench.append", detail={"i": i + j}) for j in range(batch)]
        if batch == 1:
            a.audit("bench.append", detail={"i": i})
        else:
            a.writer.append_many(recs)
    print(time.time())
    print(n / (time.perf_counter() - t))
"""

VERIFY = """
import time
from botctl import audit
from botctl.home import Home
from botctl.vault import Vault
home = Home.resolve(None)
with Vault.open(home) as v:
    t = time.perf_counter()
    verdict = audit.verify(home, v.audit_key(), v.conn)
    took = time.perf_counter() - t
assert verdict.ok, verdict.problem
print(verdict.records / took)
"""


def py(code: str, env: dict, *args: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def startup(env: dict, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "botctl", "workspace", "list", "--json"],
            env=env,
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def backend_figures(url: str | None, tmp: Path, records: int, runs: int) -> dict:
    home = tmp / ("pg" if url else "sqlite")
    env = env_for(home, url)
    subprocess.run(
        [sys.executable, "-m", "botctl", "init"] + (["--database", url] if url else []),
        env=env,
        capture_output=True,
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "botctl", "workspace", "create", "acme"],
        env=env,
        capture_output=True,
        check=True,
    )
    single = py(APPEND, env, str(max(records // 50, 50)), "1")
    batched = py(APPEND, env, str(records), "100")
    each = max(records // 100, 50)
    start_at = time.time() + 8  # after every writer has imported and opened its connections
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND, str(each), "1", str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    ends = [float(p.communicate()[0].split()[-2]) for p in procs]
    concurrent = 4 * each / (max(ends) - start_at)
    verify = py(VERIFY, env)
    return {
        "append_single": single,
        "append_batched": batched,
        "append_4_writers": concurrent,
        "verify": verify,
        "startup_ms": startup(env, runs),
    }


def daemon_path(url: str | None, seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "BOTCTL_DATABASE_URL"}
    if url:
        env["BOTCTL_DATABASE_URL"] = url
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + str(REPO / "daemon")
    out = subprocess.run(
        [sys.executable, str(HERE / "bench_daemon.py"), "--seconds", str(seconds)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(
            f"bench_daemon.py failed on {'postgresql' if url else 'sqlite'}: {out.stderr[-2000:]}"
        )
    rows = {}
    for line in out.stdout.splitlines():
        m = re.match(
            r"\| (verified action|bare pass-through) \| ([^|]+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \|", line
        )
        if m:
            rows[(m.group(1), m.group(2).strip())] = (float(m.group(3).replace(",", "")), float(m.group(4)))
    under_load = next(
        v for (path, load), v in rows.items() if path == "verified action" and "1 at a time" not in load
    )
    if "audit chain after the run: intact" not in out.stdout:
        raise SystemExit(
            f"the audit chain did not verify after the daemon run on {'postgresql' if url else 'sqlite'}"
        )
    return {"rps": under_load[0], "p50_ms": under_load[1]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d, database() as url, database() as daemon_url:
        tmp = Path(d)
        sq = backend_figures(None, tmp, args.records, args.runs)
        pg = backend_figures(url, tmp, args.records, args.runs)
        ds, dp = daemon_path(None, args.seconds), daemon_path(daemon_url, args.seconds)
    out = {
        "records": args.records,
        "sqlite": sq,
        "postgresql": pg,
        "daemon": {"sqlite": ds, "postgresql": dp},
    }
    print(f"# PostgreSQL next to SQLite — {args.records:,} records\n")
    print("| figure | SQLite | PostgreSQL | PostgreSQL / SQLite |\n|---|---:|---:|---:|")
    names = {
        "append_single": "audit append, 1 record per transaction (records/s)",
        "append_batched": "audit append, batches of 100 (records/s)",
        "append_4_writers": "audit append, 4 processes at once (records/s, total)",
        "verify": "audit verify (records/s)",
        "startup_ms": "`workspace list --json` (ms, median)",
    }
    for key, label in names.items():
        print(f"| {label} | {sq[key]:,.1f} | {pg[key]:,.1f} | {pg[key] / sq[key]:.2f} |")
    print(
        f"| verified action path under load (req/s) | {ds['rps']:,.0f} | {dp['rps']:,.0f} | {dp['rps'] / ds['rps']:.2f} |"
    )
    print(
        f"| verified action path under load (p50 ms) | {ds['p50_ms']:.2f} | {dp['p50_ms']:.2f} | "
        f"{dp['p50_ms'] / ds['p50_ms']:.2f} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
