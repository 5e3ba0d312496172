"""The console and the audit filters: how long finding a visitor's request takes on a large log, and what a
timeline page costs over HTTP.

* Filter queries (the library's `audit.Filters`, as `botctl audit` and the console run them) on N records:
  the latest 100 with no filter (baseline), by request id (its index), by request id with the index
  dropped (what schema 1 did), by connector (no index: a scan).
* The console over real HTTP on loopback: the timeline page (100 rows, server-rendered), against a static
  file from the same server (baseline), and the live-rows poll when nothing is new.

    python bench/bench_console.py [--records N] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _fill(home, n: int) -> None:  # noqa: ANN001
    from botctl.audit import make_record
    from botctl.session import Session

    with Session(home) as app:
        app.vault  # noqa: B018
        app.writer._conn.execute("PRAGMA synchronous = OFF")  # filling, not measuring the append
        for start in range(0, n, 1000):
            app.writer.append_many(
                [
                    make_record(
                        "action.run",
                        workspace="acme",
                        actor={"type": "visitor", "sub": "u1", "email": "ada@example.com"},
                        action="zendesk.list_my_tickets",
                        connector="zendesk",
                        request_id=f"req_{start + i:012d}",
                        detail={"latency_ms": 12.5},
                    )
                    for i in range(1000)
                ]
            )


def _ms(fn, rounds: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_filters(home, n: int) -> list[dict]:  # noqa: ANN001
    import sqlite3

    from botctl import audit

    reader = audit.AuditReader(home)
    middle = f"req_{n // 2:012d}"
    try:
        rows = [
            ("latest 100, no filter (baseline)", _ms(lambda: reader.latest(audit.Filters(), 100), 20)),
            (
                "by request id (indexed)",
                _ms(lambda: reader.latest(audit.Filters(request_id=middle), 100), 20),
            ),
            (
                "by connector (no index: a scan)",
                _ms(lambda: reader.latest(audit.Filters(connector="stripe"), 100), 3),
            ),
            (
                "by workspace, late outcomes included (`botctl audit -w`)",
                _ms(lambda: reader.latest(audit.Filters(workspace="acme"), 100, with_late=True), 20),
            ),
        ]
    finally:
        reader.close()
    conn = sqlite3.connect(home.audit_db)
    conn.execute("DROP INDEX records_request_id")
    conn.commit()
    conn.close()
    reader = audit.AuditReader(home)
    try:
        rows.append(
            (
                "by request id without its index (schema 1)",
                _ms(lambda: reader.latest(audit.Filters(request_id=middle), 100), 3),
            )
        )
    finally:
        reader.close()
    base = rows[0][1]
    return [{"name": name, "ms": ms, "ratio": ms / base} for name, ms in rows]


def bench_http(env: dict[str, str], home) -> list[dict]:  # noqa: ANN001
    import httpx

    from botctl import audit

    reader = audit.AuditReader(home)
    head = reader.head_seq()
    reader.close()

    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "console", "--no-browser"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        base = url.split("/login", 1)[0]
        with httpx.Client(base_url=base, timeout=60) as client:
            r = client.get(url.replace(base, ""), follow_redirects=False)
            client.cookies.set(
                r.headers["set-cookie"].split("=", 1)[0],
                r.headers["set-cookie"].split("=", 1)[1].split(";", 1)[0],
            )
            assert client.get(f"/api/records?after={head}").json() == {"rows": [], "next": head}
            for path in ("/static/console.css", "/", f"/api/records?after={head}"):
                client.get(path)  # warm
            rows = [
                ("static file (baseline)", _ms(lambda: client.get("/static/console.css"), 50)),
                ("timeline page, 100 rows", _ms(lambda: client.get("/"), 50)),
                (
                    "timeline page, by request id",
                    _ms(lambda: client.get("/?request_id=req_000000000042"), 50),
                ),
                ("live-rows poll, nothing new", _ms(lambda: client.get(f"/api/records?after={head}"), 50)),
            ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    base_ms = rows[0][1]
    return [{"name": name, "ms": ms, "ratio": ms / base_ms} for name, ms in rows]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    os.environ["BOTCTL_NO_KEYRING"] = "1"
    os.environ["BOTCTL_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory(prefix="botctl-bench-console-") as tmp:
        from botctl.home import Home

        os.environ["BOTCTL_HOME"] = tmp
        home = Home(Path(tmp))
        _fill(home, args.records)
        out = {
            "records": args.records,
            "http": bench_http(dict(os.environ), home),
            "filters": bench_filters(home, args.records),
        }
    for section in ("filters", "http"):
        for row in out[section]:
            print(f"{row['name']:<45} {row['ms']:9.2f} ms  {row['ratio']:8.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
