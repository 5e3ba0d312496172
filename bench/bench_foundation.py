"""Foundation benchmarks: CLI start-up, audit verify rate, batched durable audit append rate.

Every figure is measured against a baseline in the same run on the same machine, and printed with
the ratio and the target from issue #2. Not a timed test: it reports, it does not assert.

    python bench/bench_foundation.py [--runs 21] [--records 100000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_startup(runs: int, home: Path) -> list[tuple[str, float, float, str]]:
    exe = shutil.which("botctl", path=str(Path(sys.executable).parent)) or "botctl"
    env = {**os.environ, "BOTCTL_HOME": str(home), "BOTCTL_NO_KEYRING": "1"}
    # An installed wheel ships compiled bytecode; an editable checkout under PYTHONDONTWRITEBYTECODE
    # would otherwise recompile botctl on every run and measure the compiler, not botctl.
    import botctl

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(botctl.__file__).parent)], check=True)
    subprocess.run(
        [exe, "workspace", "create", "acme", "--plan", "pro"], env=env, capture_output=True, check=True
    )
    cases = [
        ("python -c pass (baseline)", [sys.executable, "-c", "pass"], {}),
        # The floor under every typer CLI: importing the framework, before any botctl code runs.
        ("python -c 'import typer' (floor)", [sys.executable, "-c", "import typer"], {}),
        ("botctl --help", [exe, "--help"], {}),
        ("botctl workspace list --json", [exe, "workspace", "list", "--json"], {}),
        (
            "TAB completion (bash)",
            [exe],
            {"_BOTCTL_COMPLETE": "complete_bash", "COMP_WORDS": "botctl workspace l", "COMP_CWORD": "2"},
        ),
    ]
    # Interleaved: every round runs each case once, so drift in machine load hits all of them alike.
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for round_ in range(runs + 2):
        for name, cmd, extra in cases:
            t = time.perf_counter()
            subprocess.run(
                cmd, env={**env, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            )
            if round_ >= 2:  # the first two rounds warm the page cache
                times[name].append((time.perf_counter() - t) * 1000)
    base = statistics.median(times[cases[0][0]])
    rows = []
    for name, _, _ in cases:
        ms = statistics.median(times[name])
        target = "<= 6x" if "list" in name or "TAB" in name else ""
        rows.append((name, ms, ms / base, target))
    return rows


def _fill(home: Path, n: int) -> tuple[float, float, float]:
    """Append n records in batches of 100; return (records/s, baseline records/s, ratio)."""
    from botctl import audit
    from botctl.home import Home
    from botctl.session import Session

    h = Home(home)
    with Session(h) as app:
        app.vault  # noqa: B018
        writer = app.writer
        batch = [
            audit.make_record(
                "bench.action",
                workspace="acme",
                actor={"type": "visitor", "sub": "u1", "email": "ada@example.com"},
                action="zendesk.create_ticket",
                connector="zendesk",
                detail={"status": 201, "latency_ms": 12},
            )
            for _ in range(100)
        ]
        t = time.perf_counter()
        for _ in range(n // 100):
            writer.append_many(batch)
        ours = n / (time.perf_counter() - t)
    # Baseline: the same rows inserted durably (WAL, synchronous=FULL) with no canonical JSON, no HMAC,
    # no checkpoint: what SQLite alone costs for this batch size on this disk.
    bdb = home / "baseline.db"
    c = sqlite3.connect(bdb, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE r (seq INTEGER PRIMARY KEY, body TEXT, prev_hash TEXT, hash TEXT)")
    body = audit.canonical(batch[0])
    seq = 0
    t = time.perf_counter()
    for _ in range(n // 100):
        c.execute("BEGIN IMMEDIATE")
        rows = []
        for _ in range(100):
            seq += 1
            rows.append((seq, body, "0" * 64, "0" * 64))
        c.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows)
        c.execute("COMMIT")
    base = n / (time.perf_counter() - t)
    c.close()
    return ours, base, ours / base


def bench_verify(home: Path) -> tuple[int, float, float, float]:
    from botctl import audit
    from botctl.home import Home
    from botctl.session import Session

    h = Home(home)
    with Session(h) as app:
        key, vconn = app.vault.audit_key(), app.vault.conn
        t = time.perf_counter()
        verdict = audit.verify(h, key, vconn)
        secs = time.perf_counter() - t
        assert verdict.ok, verdict.problem
    # Baseline: reading the same rows without checking anything.
    c = sqlite3.connect(h.audit_db)
    t = time.perf_counter()
    for _ in c.execute("SELECT seq, body, prev_hash, hash FROM records ORDER BY seq"):
        pass
    scan = time.perf_counter() - t
    c.close()
    return verdict.records, verdict.records / secs, verdict.records / scan, scan / secs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=21)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)")
    args = p.parse_args()
    out: dict = {}
    os.environ["BOTCTL_NO_KEYRING"] = "1"
    os.environ["BOTCTL_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory(prefix="botctl-bench-") as tmp:
        print(
            f"# botctl foundation benchmarks — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
        )
        print("\n## CLI start-up (median wall time)\n")
        print("| command | ms | x baseline | target |\n|---|---:|---:|---|")
        out["startup"] = []
        for name, ms, ratio, target in bench_startup(args.runs, Path(tmp) / "start"):
            print(f"| {name} | {ms:.1f} | {ratio:.2f} | {target} |")
            out["startup"].append({"name": name, "ms": ms, "ratio": ratio})
        home = Path(tmp) / "audit"
        ours, base, ratio = _fill(home, args.records)
        print("\n## Batched durable audit append (batches of 100, WAL + synchronous=FULL)\n")
        print("| writer | records/s | ratio | target |\n|---|---:|---:|---|")
        print(f"| raw SQLite insert, no chain (baseline) | {base:,.0f} | 1.00 | |")
        print(f"| AuditWriter.append_many | {ours:,.0f} | {ratio:.2f} | >= 20,000/s |")
        out["append"] = {"records": args.records, "rate": ours, "baseline_rate": base, "ratio": ratio}
        n, rate, scan_rate, ratio = bench_verify(home)
        print(f"\n## audit verify on {n:,} records\n")
        print("| pass | records/s | ratio | target |\n|---|---:|---:|---|")
        print(f"| plain row scan (baseline) | {scan_rate:,.0f} | 1.00 | |")
        print(f"| audit.verify (HMAC chain + checkpoint) | {rate:,.0f} | {ratio:.2f} | >= 200,000/s |")
        out["verify"] = {"records": n, "rate": rate, "baseline_rate": scan_rate, "ratio": ratio}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
