"""Run every benchmark in bench/ and write bench/REPORT.md (`make bench`).

Each benchmark runs in its own process (a clean interpreter, its own temporary home and servers) and
leaves its figures as JSON; this script turns them into one report: every figure beside its baseline
from the same run, the targets the issues set, and the machine and date they were measured on.

    python bench/report.py [--out bench/REPORT.md] [--quick]

`--quick` shortens every run (fewer rounds, records, seconds): for checking the report itself, not
for figures worth committing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = {
    # name: (script, full args, quick args)
    "foundation": ("bench_foundation.py", [], ["--runs", "5", "--records", "20000"]),
    "daemon": ("bench_daemon.py", [], ["--seconds", "2"]),
    "refresh": ("bench_refresh.py", [], ["--singles", "3"]),
    "knowledge": ("bench_knowledge.py", [], ["--chunks", "2000", "--queries", "100"]),
    "knowledge_eval": ("bench_knowledge_eval.py", [], ["--modes", "fts,hybrid"]),
    "audit_ops": ("bench_audit_ops.py", [], ["--records", "20000"]),
    "console": ("bench_console.py", [], ["--records", "20000"]),
    "mcp": ("bench_mcp.py", [], ["--seconds", "2"]),
    "answers": ("bench_answers.py", [], ["--seconds", "2"]),
    "edge_remote": ("bench_edge_remote.py", [], ["--seconds", "2"]),
    "widget": ("bench_widget.py", [], ["--rounds", "20"]),
    "postgres": ("bench_postgres.py", [], ["--records", "2000", "--seconds", "2", "--runs", "5"]),
    "nodes": ("bench_nodes.py", [], ["--seconds", "3"]),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    except OSError:
        pass
    system = platform.platform(terse=True)
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, {system}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def run(name: str, quick: bool, tmp: Path) -> tuple[dict | None, float, str]:
    script, full, short = BENCHES[name]
    out = tmp / f"{name}.json"
    started = time.monotonic()
    print(f"\n==> bench/{script}", flush=True)
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *(short if quick else full), "--json", str(out)], text=True
    )
    took = time.monotonic() - started
    if proc.returncode != 0 or not out.exists():
        return None, took, f"bench/{script} failed (exit {proc.returncode}); its output is above"
    return json.loads(out.read_text()), took, ""


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def render(
    results: dict[str, dict | None], failures: dict[str, str], took: dict[str, float], quick: bool
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` (bench/report.py) on {now}.  ",
        f"Machine: {machine()}.",
        "",
        "Every figure is measured against its baseline in the same run, on the same machine. "
        "Benchmarks report; they do not assert: the targets table below says what is met. "
        "On this shared 2-core VM the baselines themselves move 20-40% between runs: compare the ratios.",
        "",
    ]
    if quick:
        lines += ["**Quick run (`--quick`): shortened runs, not figures to compare or commit.**", ""]
    targets: list[tuple[str, str, bool | None, str]] = []

    f = results.get("foundation")
    if f:
        st = f["startup"]
        lines += [
            "## CLI start-up (bench/bench_foundation.py, median wall time)",
            "",
            "| command | ms | x baseline |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r['name']} | {r['ms']:.1f} | {r['ratio']:.2f} |" for r in st]
        by = {r["name"]: r for r in st}
        lst, tab = by.get("botctl workspace list --json"), by.get("TAB completion (bash)")
        floor = by.get("python -c 'import typer' (floor)")
        if lst and tab:
            worst = max(lst["ratio"], tab["ratio"])
            why = (
                f"importing typer alone is {floor['ratio']:.2f}x here; botctl's own share of `workspace list` is "
                f"{lst['ms'] - floor['ms']:.0f} ms"
                if floor
                else "typer's own import"
            )
            targets.append(
                (
                    "`workspace list --json` and TAB completion <= 6x a bare interpreter (#2)",
                    f"{lst['ratio']:.2f}x / {tab['ratio']:.2f}x",
                    worst <= 6.0,
                    why,
                )
            )
        a, v = f["append"], f["verify"]
        lines += [
            "",
            "## Audit log (bench/bench_foundation.py)",
            "",
            "| measurement | records/s | baseline | baseline records/s | ratio |",
            "|---|---:|---|---:|---:|",
            f"| batched durable append ({a['records']:,} records, batches of 100, WAL + synchronous=FULL) | "
            f"{fmt_rate(a['rate'])} | raw SQLite insert, no chain | {fmt_rate(a['baseline_rate'])} | "
            f"{a['ratio']:.2f} |",
            f"| audit verify ({v['records']:,} records: HMAC chain + checkpoint) | {fmt_rate(v['rate'])} | "
            f"plain row scan | {fmt_rate(v['baseline_rate'])} | {v['ratio']:.2f} |",
        ]
        targets.append(
            (
                "batched durable audit append >= 20,000 records/s (#2)",
                f"{fmt_rate(a['rate'])}/s",
                a["rate"] >= 20_000,
                "one fsync per batch of 100: bound by this VM's disk, whose own baseline "
                "swings 87k-145k/s between runs (ours 15.9k-23.8k)",
            )
        )
        targets.append(
            ("audit verify >= 200,000 records/s (#2)", f"{fmt_rate(v['rate'])}/s", v["rate"] >= 200_000, "")
        )

    d = results.get("daemon")
    if d:
        lines += [
            "",
            "## Verified action path vs a bare pass-through (bench/bench_daemon.py)",
            "",
            "client → edge → provider (JWT, plan, connection, params, decrypt, vendor calls, durable audit) "
            "→ sandbox, against a proxy making the same vendor calls with no checks.",
            "",
            "| path | load | req/s | p50 ms | p99 ms | errors |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['path']} | {r['load']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} |"
            for r in d["rows"]
        ]
        lines += [
            "",
            f"Throughput ratio under load (verified / bare): **{d['throughput_ratio']:.2f}**; added p50 "
            f"latency one request at a time: **{d['added_p50_ms']:+.2f} ms**; audit chain after the run: "
            f"{'intact' if d['audit_intact'] else 'BROKEN'}.",
        ]
        targets.append(
            (
                "verified path >= 50% of the pass-through's throughput (#5)",
                f"{d['throughput_ratio']:.2f}",
                d["throughput_ratio"] >= 0.5,
                "two Python processes per action where the baseline has one; "
                "0.48-0.58 across this session's runs",
            )
        )
        targets.append(
            (
                "added p50 latency <= 2 ms (#5)",
                f"{d['added_p50_ms']:+.2f} ms",
                d["added_p50_ms"] <= 2.0,
                "a second process hop (~1.5 ms), the durable audit write (fsync, ~1 ms), JWT + vault "
                "lookups + decrypt (~1 ms); see the closing note of #8",
            )
        )

    m = results.get("mcp")
    if m:
        lines += [
            "",
            "## MCP tools/call vs the action API (bench/bench_mcp.py)",
            "",
            "The same action for the same visitor through `/mcp` (JSON-RPC, tool name mapping) and through "
            "`/actions/{a}`, one daemon, one run.",
            "",
            "| path | load | req/s | p50 ms | p99 ms | errors |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['path']} | {r['load']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} |"
            for r in m["rows"]
        ]
        lines += [
            "",
            f"Throughput ratio under load (MCP / action API): **{m['throughput_ratio']:.2f}**; added p50 "
            f"latency one request at a time: **{m['added_p50_ms']:+.2f} ms**; RSS after the run: edge "
            f"{m['rss_mb']['edge']:.0f} MB, provider {m['rss_mb']['provider']:.0f} MB.",
        ]

    an = results.get("answers")
    if an:
        lines += [
            "",
            "## Actions while visitors ask questions (bench/bench_answers.py)",
            "",
            "Verified actions alone, then the same with visitors asking the store help center questions "
            "back to back (hybrid answers, each question new); one daemon, one run. The provider looks "
            "answers up on its own thread, so the event loop serving the actions goes on meanwhile.",
            "",
            "| load | actions/s | p50 ms | p99 ms | answers/s | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['load']} | {r['actions_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['answers_per_s']:,.0f} | {r['errors'] + r['chat_errors']} |"
            for r in an["rows"]
        ]
        base, under = an["rows"][0], an["rows"][-1]
        lines += [
            "",
            f"Under chat load, actions' p50 is **{under['p50_ms'] / base['p50_ms']:.2f}x** and p99 "
            f"**{under['p99_ms'] / base['p99_ms']:.2f}x** their latency alone.",
        ]

    er = results.get("edge_remote")
    if er:
        lines += [
            "",
            "## The edge on another host: Unix socket vs TCP + mutual TLS (bench/bench_edge_remote.py)",
            "",
            "The same verified action through the node's own edge and through an edge-only process reaching "
            "the provider's `--provider-listen` over mutual TLS (loopback: the hop's TLS cost, no network).",
            "",
            "| path | load | req/s | p50 ms | p99 ms | errors |",
            "|---|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['path']} | {r['load']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} |"
            for r in er["rows"]
        ]
        lines += [
            "",
            f"Throughput ratio under load (remote / local): **{er['throughput_ratio']:.2f}**; added p50 "
            f"latency one request at a time: **{er['added_p50_ms']:+.2f} ms**; audit chain after the run: "
            f"{'intact' if er['audit_intact'] else 'BROKEN'}.",
        ]

    r = results.get("refresh")
    if r:
        base = r["rows"][0]["ms"]
        lines += [
            "",
            "## Refresh storm (bench/bench_refresh.py)",
            "",
            "A real OAuth connection (Zendesk, code + PKCE through the sandbox's authorization server); "
            "every caller holds the same stale token generation and asks for a refresh at once.",
            "",
            "| case | callers | token requests | wall ms | x baseline |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {x['case']} | {x['callers']} | {x['token_requests']} | {x['ms']:.1f} | {x['ms'] / base:.2f} |"
            for x in r["rows"]
        ]
        storms = r["rows"][1:]
        targets.append(
            (
                "refresh storm: 200 concurrent callers on an expired token → 1 token request (#4)",
                " / ".join(str(x["token_requests"]) for x in storms) + " (1 process / several)",
                all(x["token_requests"] == 1 for x in storms),
                "",
            )
        )

    k = results.get("knowledge")
    if k:
        lines += [
            "",
            f"## Knowledge query latency on {k['chunks']:,} chunks (bench/bench_knowledge.py)",
            "",
            f"{k['queries']} questions; {k['grounded']} answered as grounded.",
            "",
            "| query | p50 ms | p99 ms | p50 x baseline | p99 x baseline |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {x['query']} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['p50_ratio']:.2f} | "
            f"{x['p99_ratio']:.2f} |"
            for x in k["rows"]
        ]
        # The target is a new question's answer (not the repeated one's, whose vector is kept).
        ans = next((x for x in k["rows"] if x["query"] == "knowledge.answer (hybrid)"), k["rows"][-1])
        if "grounded_fts" in k:
            lines += [
                "",
                f"Answered as grounded: {k['grounded']} hybrid, {k['grounded_fts']} FTS5 alone. Indexing "
                f"(FTS5 + embedding every passage with {k['model']['model']}): {k['index_seconds']:.0f} s.",
            ]
            if "answer_cpu_p50_ms" in k:
                lines += [
                    "",
                    f"CPU time of a hybrid answer (the process's, all threads): p50 "
                    f"{k['answer_cpu_p50_ms']:.2f} ms, p99 {k['answer_cpu_p99_ms']:.2f} ms: what the wall "
                    "times cost on a core of their own.",
                ]
            targets.append(
                (
                    f"hybrid knowledge answer on {k['chunks']:,} passages: p50 <= 20 ms, against a plain "
                    "FTS5 MATCH (#16)",
                    f"{ans['p50_ms']:.2f} ms ({ans['p50_ratio']:.2f}x)",
                    ans["p50_ms"] <= 20.0,
                    "wall time of a question asked for the first time: embedding it with MiniLM (~4-5 ms of one "
                    "core here) and comparing it with the passages' sentence vectors; see the CPU time under "
                    "the latency table",
                )
            )
        else:
            targets.append(
                (
                    f"knowledge answer on {k['chunks']:,} chunks: p50 reported against a plain FTS5 MATCH (#6)",
                    f"{ans['p50_ms']:.2f} ms ({ans['p50_ratio']:.2f}x)",
                    None,
                    "",
                )
            )

    e = results.get("knowledge_eval")
    if e:
        m = e["model"]
        lines += [
            "",
            "## Knowledge answers on the evaluation set (bench/bench_knowledge_eval.py)",
            "",
            "Three help centers the project wrote (bench/knowledge_eval: a store, a SaaS, a clinic), 46 "
            "answerable questions each as visitors ask them and 16 the documents do not answer. *Right*: "
            "answered grounded, citing an expected section; *anyway*: an unanswerable question answered. "
            f"Default model: {m['model']} ({m['package']} {m['version']}, {m['dimensions']} dimensions, "
            f"{(m['bytes'] or 0) / 1e6:.0f} MB). Calibrated on store + saas, clinic held out "
            "(docs/knowledge-retrieval.md).",
            "",
            "| retrieval | corpus | right | anyway | both sections cited |",
            "|---|---|---:|---:|---:|",
        ]
        labels = {
            "fts": "FTS5 alone (baseline)",
            "hybrid": f"hybrid: FTS5 + {m['model']}",
            "wordllama": "hybrid: FTS5 + wordllama l2_supercat-256",
        }
        for mode, per in e["results"].items():
            for corpus, x in per.items():
                lines.append(
                    f"| {labels.get(mode, mode)} | {corpus} | {x['right']}/{x['answerable']} "
                    f"({100 * x['right'] / x['answerable']:.0f}%) | {x['answered_anyway']}/{x['unanswerable']} "
                    f"({100 * x['answered_anyway'] / x['unanswerable']:.0f}%) | "
                    f"{x['both_cited']}/{x['spanning']} |"
                )
        hyb = e["results"].get("hybrid", {})
        for corpus in ("store", "saas", "clinic", "overall"):
            x = hyb.get(corpus)
            if not x:
                continue
            right, anyway = x["right"] / x["answerable"], x["answered_anyway"] / x["unanswerable"]
            targets.append(
                (
                    f"knowledge eval, {corpus}: >= 90% answered grounded with a right citation (#16)",
                    f"{100 * right:.0f}%",
                    right >= 0.9,
                    "a 23 MB model on paraphrases, fragments and typos; "
                    "the threshold also holds the false answers down (docs/knowledge-retrieval.md)",
                )
            )
            targets.append(
                (
                    f"knowledge eval, {corpus}: <= 5% of unanswerable questions answered (#16)",
                    f"{100 * anyway:.0f}%",
                    anyway <= 0.05,
                    "1 or 2 of 16 questions: see the calibration",
                )
            )

    ao = results.get("audit_ops")
    if ao:
        c = ao["canonical"]
        lines += [
            "",
            "## Audit export, shipping and the independent verifier (bench/bench_audit_ops.py)",
            "",
            f"Canonical JSON per `action.run` record: RFC 8785 {c['jcs_us']:.1f} µs against the old rendering's "
            f"{c['legacy_us']:.1f} µs ({c['ratio']:.2f}x; the append is bound by its fsync).",
            "",
            "| pass | records/s | x baseline |",
            "|---|---:|---:|",
        ]
        lines += [f"| {x['name']} | {fmt_rate(x['rate'])} | {x['ratio']:.2f} |" for x in ao["export"]]
        v = ao.get("verifiers")
        if v:
            lines += [
                "",
                f"Verifying {v['records']:,} records: `audit verify` {fmt_rate(v['botctl'])}/s, "
                f"tools/verify-audit.mjs from the NDJSON export {fmt_rate(v['node'])}/s ({v['ratio']:.2f}x); "
                f"verdicts agree: {'yes' if v['agree'] else '**no**'}.",
            ]

    co = results.get("console")
    if co:
        lines += [
            "",
            f"## The console and the audit filters on {co['records']:,} records (bench/bench_console.py)",
            "",
            "| query (audit.Filters, latest 100) | median ms | x baseline |",
            "|---|---:|---:|",
        ]
        lines += [f"| {x['name']} | {x['ms']:.2f} | {x['ratio']:.2f} |" for x in co["filters"]]
        lines += ["", "| console over HTTP on loopback | median ms | x baseline |", "|---|---:|---:|"]
        lines += [f"| {x['name']} | {x['ms']:.2f} | {x['ratio']:.2f} |" for x in co["http"]]

    wi = results.get("widget")
    if wi:
        lines += [
            "",
            "## The widget's additions to a chat answer (bench/bench_widget.py)",
            "",
            "| per answer | median µs | share of the answer |",
            "|---|---:|---:|",
        ]
        lines += [f"| {x['name']} | {x['us']:.1f} | {x['ratio']:.2%} |" for x in wi["answers"]]
        s = wi["script"]
        lines += [
            "",
            f"widget.js as served: {s['bytes']:,} bytes ({s['gzip']:,} gzipped), {s['parts']} parts.",
        ]

    pg = results.get("postgres")
    if pg:
        sq, pq, dm = pg["sqlite"], pg["postgresql"], pg["daemon"]
        lines += [
            "",
            f"## PostgreSQL next to SQLite (bench/bench_postgres.py, {pg['records']:,} records)",
            "",
            "| figure | SQLite (baseline) | PostgreSQL | PostgreSQL / SQLite |",
            "|---|---:|---:|---:|",
        ]
        for key, label in (
            ("append_single", "audit append, 1 record per transaction (records/s)"),
            ("append_batched", "audit append, batches of 100 (records/s)"),
            ("append_4_writers", "audit append, 4 processes at once (records/s, total)"),
            ("verify", "audit verify (records/s)"),
            ("startup_ms", "`botctl workspace list --json` (ms, median)"),
        ):
            lines.append(f"| {label} | {fmt_rate(sq[key])} | {fmt_rate(pq[key])} | {pq[key] / sq[key]:.2f} |")
        ds, dp = dm["sqlite"], dm["postgresql"]
        lines += [
            f"| verified action path, under load (req/s) | {fmt_rate(ds['rps'])} | {fmt_rate(dp['rps'])} | "
            f"{dp['rps'] / ds['rps']:.2f} |",
            f"| verified action path, under load (p50 ms) | {ds['p50_ms']:.2f} | {dp['p50_ms']:.2f} | "
            f"{dp['p50_ms'] / ds['p50_ms']:.2f} |",
        ]

    nd = results.get("nodes")
    if nd:
        lines += [
            "",
            "## 1 and 2 nodes on one PostgreSQL (bench/bench_nodes.py)",
            "",
            "| nodes | actions/s | errors | CPU ms per action (providers + edges) |",
            "|---|---:|---:|---:|",
        ]
        for label in ("1 node", "2 nodes"):
            r = nd[label]
            lines.append(f"| {label} | {r['rps']} | {r['errors']} | {r['cpu_ms_per_action']} |")
        lines += [
            "",
            f"2 nodes / 1 node: {nd['2 nodes']['rps'] / max(nd['1 node']['rps'], 0.1):.2f} on this machine "
            "(load generator, sandbox, PostgreSQL and both nodes share its cores: overhead, not scaling).",
        ]

    lines += [
        "",
        "## Targets",
        "",
        "| target (issue) | figure | met | why, where missed |",
        "|---|---|---|---|",
    ]
    for name, fig, met, why in targets:
        mark = "—" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {fig} | {mark} | {why if met is False else ''} |")
    if failures:
        lines += ["", "## Benchmarks that failed in this run", ""]
        lines += [f"- {name}: {msg}" for name, msg in failures.items()]
    lines += ["", "Run times: " + ", ".join(f"{n} {t:.0f} s" for n, t in took.items()) + ".", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(HERE / "REPORT.md"))
    ap.add_argument(
        "--quick", action="store_true", help="shortened runs (checks the report, not the figures)"
    )
    ap.add_argument("--only", action="append", choices=sorted(BENCHES), help="run just these benchmarks")
    args = ap.parse_args()
    results: dict[str, dict | None] = {}
    failures: dict[str, str] = {}
    took: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="botctl-report-") as tmp:
        for name in args.only or BENCHES:
            results[name], took[name], err = run(name, args.quick, Path(tmp))
            if err:
                failures[name] = err
    text = render(results, failures, took, args.quick)
    Path(args.out).write_text(text)
    print(f"\nwrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
