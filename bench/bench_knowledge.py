"""Knowledge query latency on 10,000 chunks, against a plain FTS5 MATCH on the same table.

Generates a synthetic help center in a temporary home (Markdown files with sections of 90-170 words,
Zipf-distributed vocabulary, so common words have long posting lists like real text), adds it through
`knowledge.add` (the real path), then times, interleaved, per question:

* baseline: ``SELECT rowid, bm25(..) FROM knowledge_fts WHERE knowledge_fts MATCH ? ORDER BY bm25 LIMIT 5``
  with the same MATCH expression `search` builds (the FTS5 work alone: no workspace filter, no join,
  no re-scoring);
* `knowledge.search(conn, ws, q, 5)` (hybrid: FTS5 and the embedding model);
* `knowledge.answer(conn, ws, q)` with dense retrieval off (``BOTCTL_KNOWLEDGE_DENSE=0``: FTS5 alone);
* `knowledge.answer(conn, ws, q)` hybrid (the default: the question embedded, compared with the
  workspace's stored heading and sentence vectors — through the centroid prefilter above 2,000
  passages —, fused with FTS5; sentences picked with the stored vectors). Extractive; BOTCTL_LLM_URL
  is unset. Each question is timed as a new one (the vectors of questions asked before are forgotten
  first); then the same answer again, as for a visitor asking what another asked (its vector is kept).

Half the questions are drawn from a chunk's own words (answerable), half are random words. With
``--tenants N`` the same table also holds N-1 other workspaces of the same size (the workspace filter
then discards their matches). Not a timed test: it reports, it does not assert.

    python bench/bench_knowledge.py [--chunks 10000] [--queries 300] [--tenants 1] [--keep DIR]

``--keep DIR`` builds the home in DIR and leaves it there; a later run with the same DIR and the same
``--chunks``/``--tenants`` reuses the indexed home (indexing 10,000 passages takes ~20 minutes) and times
the same questions (the corpus and the questions come from a fixed seed).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

COMMON = (
    "order orders shipping shipped delivery return returns refund refunds account password email payment "
    "card cards gift item items days business tracking package address invoice tax price customer "
    "support team store product size exchange warranty discount code checkout cancel subscription "
    "plan billing charge charged receipt label carrier international customs duties free standard "
    "express overnight damaged missing wrong replacement sign login reset change delete newsletter"
).split()
STOP = "the a to of and in for is you your we our it on with be can are this that or if at as by".split()


def _vocabulary(rng: random.Random, n: int) -> list[str]:
    # A dict keeps the order words were made in (a set's order follows string hashing, which changes
    # between runs): COMMON first, so the Zipf weights make them the most frequent, then the rest.
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words = dict.fromkeys(COMMON)
    while len(words) < n:
        words["".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def _generate(root: Path, n_chunks: int, rng: random.Random, vocab: list[str]) -> list[list[str]]:
    """Markdown files of 20 sections each; returns each section's content words (to draw questions from)."""
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf
    sections: list[list[str]] = []
    per_file = 20
    for f in range(0, n_chunks, per_file):
        parts = [f"# Help topic {f // per_file}\n"]
        for s in range(min(per_file, n_chunks - f)):
            heading = " ".join(rng.choices(vocab[:300], weights[:300], k=3))
            words = rng.choices(vocab, weights, k=rng.randint(60, 110))
            # Sentences of 14 content words (with stop words between), each capitalised and ended by a
            # full stop, as help-center prose is: ~7 sentences a section, each embedded on its own.
            sentences, text = [], []
            for i, w in enumerate(words):
                text.append(w)
                if rng.random() < 0.5:
                    text.append(rng.choice(STOP))
                if i % 14 == 13 or i == len(words) - 1:
                    sentences.append(" ".join(text).capitalize() + ".")
                    text = []
            parts.append(f"## {heading.capitalize()} {s}\n\n{' '.join(sentences)}\n")
            sections.append(words)
        (root / f"topic-{f // per_file:05d}.md").write_text("\n".join(parts))
    return sections


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--tenants", type=int, default=1, help="workspaces of --chunks each in the same table"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    parser.add_argument("--keep", metavar="DIR", help="build the home in DIR and keep it; reuse it if there")
    args = parser.parse_args()

    # As the provider runs (botctl/provider/__main__.py): one BLAS thread per call, set before numpy loads.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if args.keep:
        tmp = Path(args.keep).resolve()
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="botctl-bench-knowledge-"))
    reuse = (tmp / "home").exists()
    os.environ["BOTCTL_HOME"] = str(tmp / "home")
    os.environ["BOTCTL_NO_KEYRING"] = "1"
    os.environ.pop("BOTCTL_LLM_URL", None)
    os.environ.pop("BOTCTL_KNOWLEDGE_DENSE", None)
    from botctl import knowledge, workspaces
    from botctl.home import Home
    from botctl.knowledge import embed
    from botctl.session import Session

    def forget_questions() -> None:
        if embed.enabled():
            embed.model().questions.clear()

    rng = random.Random(6)
    vocab = _vocabulary(rng, 6000)
    app = Session(Home.resolve(None))
    target = None
    index_seconds = 0.0
    sections: list[list[str]] = []
    for t in range(args.tenants):
        docs = tmp / f"docs-{t}"
        docs.mkdir(exist_ok=True)
        secs = _generate(docs, args.chunks, rng, vocab)
        if reuse:
            ws = workspaces.get(app.vault.conn, f"tenant-{t}")
            print(f"reusing the indexed home in {tmp} for {ws.name}")
            if target is None:
                target, sections = ws, secs
            continue
        ws = workspaces.create(app, f"tenant-{t}")
        started = time.perf_counter()
        report = knowledge.add(app, ws, [docs])
        took = time.perf_counter() - started
        index_seconds = took
        print(
            f"indexed {report.chunks} chunks ({len(report.added)} documents, {report.embedded} embedded) for "
            f"{ws.name} in {took:.1f} s ({report.chunks / took:,.0f} chunks/s)"
        )
        if target is None:
            target, sections = ws, secs
    assert target is not None
    conn = app.vault.conn

    questions = []
    for i in range(args.queries):
        if i % 2 == 0:
            words = rng.sample(rng.choice(sections), 3)
        else:
            words = rng.sample(vocab, rng.randint(2, 4))
        questions.append(f"how do I {' '.join(words)}?")

    baseline_sql = (
        "SELECT rowid, bm25(knowledge_fts) FROM knowledge_fts WHERE knowledge_fts MATCH ? "
        "ORDER BY bm25(knowledge_fts) LIMIT 5"
    )
    times: dict[str, list[float]] = {
        "baseline": [],
        "search": [],
        "answer_fts": [],
        "answer": [],
        "answer_again": [],
    }
    # CPU time of the hybrid answer (this process, all threads): what it costs when the machine is not
    # shared; on a busy machine the wall time above is mostly waiting for a core.
    cpu: list[float] = []
    grounded = grounded_fts = 0
    for round_ in range(2):  # the first round warms the page cache and the stemmer's cache
        for q in questions:
            expr = knowledge.match_expression(w for w, _ in knowledge.query_terms(q))
            t0 = time.perf_counter()
            conn.execute(baseline_sql, (expr,)).fetchall()
            t1 = time.perf_counter()
            forget_questions()  # every question is timed as new: embedded, not found among those kept
            knowledge.search(conn, target, q, 5)
            t2 = time.perf_counter()
            os.environ["BOTCTL_KNOWLEDGE_DENSE"] = "0"
            fts_result = knowledge.answer(conn, target, q)
            del os.environ["BOTCTL_KNOWLEDGE_DENSE"]
            forget_questions()
            t3, c3 = time.perf_counter(), time.process_time()
            result = knowledge.answer(conn, target, q)
            t4, c4 = time.perf_counter(), time.process_time()
            knowledge.answer(conn, target, q)  # asked again: its vector is kept
            t5 = time.perf_counter()
            if round_:
                times["baseline"].append((t1 - t0) * 1000)
                times["search"].append((t2 - t1) * 1000)
                times["answer_fts"].append((t3 - t2) * 1000)
                times["answer"].append((t4 - t3) * 1000)
                times["answer_again"].append((t5 - t4) * 1000)
                cpu.append((c4 - c3) * 1000)
                grounded += result["grounded"]
                grounded_fts += fts_result["grounded"]
    base50, base99 = statistics.median(times["baseline"]), _pct(times["baseline"], 99)
    print(
        f"\n{args.queries} questions on {args.chunks:,} chunks x {args.tenants} workspace(s); "
        f"{grounded} answered as grounded (FTS5 alone: {grounded_fts}); CPU time of a hybrid answer: "
        f"p50 {statistics.median(cpu):.2f} ms, p99 {_pct(cpu, 99):.2f} ms\n"
    )
    print(f"{'':28}{'p50 ms':>9}{'p99 ms':>9}{'p50 ratio':>11}{'p99 ratio':>11}")
    rows = []
    for name, label in (
        ("baseline", "plain FTS5 MATCH (baseline)"),
        ("search", "knowledge.search (hybrid)"),
        ("answer_fts", "knowledge.answer (FTS5 only)"),
        ("answer", "knowledge.answer (hybrid)"),
        ("answer_again", "... the same question again"),
    ):
        p50, p99 = statistics.median(times[name]), _pct(times[name], 99)
        print(f"{label:28}{p50:9.2f}{p99:9.2f}{p50 / base50:10.2f}x{p99 / base99:10.2f}x")
        rows.append(
            {
                "query": label,
                "p50_ms": p50,
                "p99_ms": p99,
                "p50_ratio": p50 / base50,
                "p99_ratio": p99 / base99,
            }
        )
    if args.json:
        import json

        Path(args.json).write_text(
            json.dumps(
                {
                    "chunks": args.chunks,
                    "queries": args.queries,
                    "grounded": grounded,
                    "grounded_fts": grounded_fts,
                    "index_seconds": index_seconds,
                    "model": embed.model_info(),
                    "answer_cpu_p50_ms": statistics.median(cpu),
                    "answer_cpu_p99_ms": _pct(cpu, 99),
                    "rows": rows,
                },
                indent=2,
            )
        )
    app.close()
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
