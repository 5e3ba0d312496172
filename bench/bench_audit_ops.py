"""Audit operations benchmarks: canonical JSON (RFC 8785 vs the old rendering), export (NDJSON, CSV) and
shipping to a file sink against a plain row scan, and the independent Node verifier against `audit verify`.

    python bench/bench_audit_ops.py [--records N] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench_canonical(n: int = 20000) -> dict:
    from botctl.audit.records import _CANONICAL, canonical, make_record

    rec = make_record(
        "action.run",
        workspace="acme",
        actor={"type": "visitor", "sub": "u1", "email": "ada@example.com"},
        action="zendesk.list_my_tickets",
        connector="zendesk",
        request_id="req_0123456789ab",
        detail={"params": {"status": "open"}, "latency_ms": 12.3, "upstream_statuses": [200]},
    )

    def best(fn) -> float:  # noqa: ANN001
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                fn(rec)
            times.append((time.perf_counter() - t) / n * 1e6)
        return min(times)

    legacy, jcs = best(_CANONICAL.encode), best(canonical)
    return {"legacy_us": legacy, "jcs_us": jcs, "ratio": jcs / legacy}


def _fill(home, n: int) -> None:  # noqa: ANN001
    from botctl import store
    from botctl.audit import make_record
    from botctl.session import Session

    with Session(home) as app:
        app.vault  # noqa: B018
        batch = [
            make_record(
                "action.run",
                workspace="acme",
                actor={"type": "visitor", "sub": "u1", "email": "ada@example.com"},
                action="zendesk.create_ticket",
                connector="zendesk",
                detail={"status": 201, "latency_ms": 12.5},
            )
            for _ in range(1000)
        ]
        conn = app.writer._conn
        conn.execute("PRAGMA synchronous = OFF")  # filling, not measuring the append
        for _ in range(n // 1000):
            app.writer.append_many(batch)
    del store


def _rate(n: int, fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    os.environ["BOTCTL_NO_KEYRING"] = "1"
    os.environ["BOTCTL_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    out: dict = {"canonical": bench_canonical()}
    with tempfile.TemporaryDirectory(prefix="botctl-bench-auditops-") as tmp:
        from botctl.audit import shipping
        from botctl.audit.export import write_export
        from botctl.home import Home

        os.environ["BOTCTL_HOME"] = tmp
        home = Home(Path(tmp))
        _fill(home, args.records)
        n = args.records + 1

        def scan() -> None:
            c = sqlite3.connect(home.audit_db)
            sink = io.BytesIO()
            for (body,) in c.execute("SELECT body FROM records ORDER BY seq"):
                sink.write(body.encode())
            c.close()

        rows = [("plain row scan, bodies to memory (baseline)", _rate(n, scan))]
        with open(os.devnull, "wb") as null:
            rows.append(
                ("audit export --format ndjson", _rate(n, lambda: write_export(home, null, fmt="ndjson")))
            )
            rows.append(("audit export --format csv", _rate(n, lambda: write_export(home, null, fmt="csv"))))
        sink_path = Path(tmp) / "sink.ndjson"
        conn = shipping.shipstate.connect(home)
        shipping.shipstate.add_sink(conn, "bench", "file", str(sink_path), {})
        conn.close()
        from botctl.session import Session

        with Session(home) as app:
            key = app.vault.audit_key()

        def ship() -> None:
            while any(r["sent"] for r in shipping.ship_once(home, key=key, force=True, anchor_every=0.0)):
                pass

        rows.append(("file sink: ship all (MACs checked, anchor + fsync per 2,000)", _rate(n, ship)))
        out["export"] = [{"name": name, "rate": r, "ratio": r / rows[0][1]} for name, r in rows]
        # The independent verifier against ours, on the same log.
        node = shutil.which("node")
        if node:
            keyfile = Path(tmp) / "k"
            keyfile.write_text(key.hex())
            export = Path(tmp) / "e.ndjson"
            with open(export, "wb") as f:
                write_export(home, f, fmt="ndjson")
            from botctl import store
            from botctl.audit import verify

            vault = store.open_vault(home, migrate_to_latest=False)
            ours = _rate(n, lambda: verify(home, key, vault))
            vault.close()
            t = time.perf_counter()
            proc = subprocess.run(
                [node, str(REPO / "tools" / "verify-audit.mjs"), "--json", str(export)],
                env={"BOTCTL_AUDIT_KEY_FILE": str(keyfile)},
                capture_output=True,
                text=True,
            )
            theirs = n / (time.perf_counter() - t)
            ok = proc.returncode == 0 and json.loads(proc.stdout)["records"] == n
            out["verifiers"] = {
                "records": n,
                "botctl": ours,
                "node": theirs,
                "ratio": theirs / ours,
                "agree": ok,
            }
    print(f"# audit operations — {args.records:,} records\n")
    c = out["canonical"]
    print(
        f"canonical JSON per record: RFC 8785 {c['jcs_us']:.1f} us, old rendering {c['legacy_us']:.1f} us "
        f"({c['ratio']:.2f}x)\n"
    )
    print("| pass | records/s | x baseline |\n|---|---:|---:|")
    for r in out["export"]:
        print(f"| {r['name']} | {r['rate']:,.0f} | {r['ratio']:.2f} |")
    if "verifiers" in out:
        v = out["verifiers"]
        print(
            f"\nverify: botctl {v['botctl']:,.0f}/s, tools/verify-audit.mjs (Node, from the export) "
            f"{v['node']:,.0f}/s ({v['ratio']:.2f}x), agree: {v['agree']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
