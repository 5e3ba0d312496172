"""Knowledge answer accuracy on the evaluation set in bench/knowledge_eval/ (three help centers the
project wrote itself: a store, a SaaS, a clinic), retrieval with and without dense embeddings.

Each corpus folder has ``docs/`` (Markdown) and ``questions.txt``: one question a line, as visitors ask
them, ``QUESTION => DOC#SECTION | DOC#SECTION`` (citing any one of them is right; a question whose
answer spans two sections lists both) or ``QUESTION => -`` (the documents do not answer it). Every
corpus is added to its own workspace through `knowledge.add` (the real path: chunks, FTS5, vectors),
then every question goes through `knowledge.answer`, once per mode:

* ``fts``: FTS5 only (``BOTCTL_KNOWLEDGE_DENSE=0``), the baseline;
* ``hybrid``: FTS5 and the default embedding model (all-MiniLM-L6-v2, int8 ONNX), fused;
* ``wordllama``: FTS5 and WordLlama (``BOTCTL_KNOWLEDGE_MODEL=wordllama``), fused: the candidate the
  default was chosen against. Switching model re-runs `knowledge.add`, which re-embeds every passage.

Reported per corpus and overall: the share of answerable questions answered grounded with a right
citation (target >= 90%), the share of unanswerable questions answered anyway (target <= 5%), and the
share of two-section questions that cite both. Not a test: it reports, it does not assert.

    python bench/bench_knowledge_eval.py [--modes fts,hybrid] [--verbose] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

EVAL = Path(__file__).resolve().parent / "knowledge_eval"
CORPORA = ("store", "saas", "clinic")


@dataclass
class Question:
    text: str
    expected: list[tuple[str, str]]  # (document, last heading of the section); empty: unanswerable


def load_questions(path: Path) -> list[Question]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, _, want = line.rpartition("=>")
        want = want.strip()
        expected = [] if want == "-" else [tuple(w.strip().split("#", 1)) for w in want.split("|")]
        out.append(Question(text.strip(), expected))  # type: ignore[arg-type]
    return out


def cites(citation: dict, expected: tuple[str, str]) -> bool:
    doc, heading = expected
    section = citation["section"]
    return citation["document"] == doc and (section == heading or section.endswith(" > " + heading))


def evaluate(conn, ws, questions: list[Question], verbose: bool = False) -> dict:
    from botctl import knowledge

    answerable = [q for q in questions if q.expected]
    unanswerable = [q for q in questions if not q.expected]
    right = both = spanning = answered_anyway = 0
    misses: list[str] = []
    for q in questions:
        r = knowledge.answer(conn, ws, q.text)
        if q.expected:
            hit = r["grounded"] and any(cites(c, e) for c in r["citations"] for e in q.expected)
            right += hit
            if len(q.expected) > 1:
                spanning += 1
                both += r["grounded"] and all(any(cites(c, e) for c in r["citations"]) for e in q.expected)
            if not hit:
                got = (
                    "refused"
                    if not r["grounded"]
                    else "cited " + "; ".join(f"{c['document']}#{c['section']}" for c in r["citations"])
                )
                misses.append(f"MISS  {q.text!r}: {got}")
        elif r["grounded"]:
            answered_anyway += 1
            c = r["citations"][0]
            misses.append(f"FALSE {q.text!r}: cited {c['document']}#{c['section']}")
    if verbose:
        for m in misses:
            print("   ", m)
    return {
        "answerable": len(answerable),
        "right": right,
        "unanswerable": len(unanswerable),
        "answered_anyway": answered_anyway,
        "spanning": spanning,
        "both_cited": both,
        "misses": misses,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="fts,hybrid,wordllama", help="comma-separated: fts, hybrid, wordllama")
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--verbose", action="store_true", help="print every miss and false answer")
    ap.add_argument(
        "--json", metavar="FILE", help="also write the figures as JSON (bench/report.py reads it)"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="botctl-bench-eval-"))
    os.environ["BOTCTL_HOME"] = str(tmp / "home")
    os.environ["BOTCTL_NO_KEYRING"] = "1"
    os.environ.pop("BOTCTL_LLM_URL", None)
    os.environ.pop("BOTCTL_KNOWLEDGE_DENSE", None)
    os.environ.pop("BOTCTL_KNOWLEDGE_MODEL", None)
    from botctl import knowledge, workspaces
    from botctl.home import Home
    from botctl.session import Session

    app = Session(Home.resolve(None))
    spaces = {}
    for name in args.corpora.split(","):
        ws = workspaces.create(app, f"eval-{name}")
        t0 = time.perf_counter()
        report = knowledge.add(app, ws, [EVAL / name / "docs"])
        print(f"{name}: {report.chunks} passages added in {time.perf_counter() - t0:.2f} s")
        spaces[name] = (ws, load_questions(EVAL / name / "questions.txt"))

    results: dict[str, dict[str, dict]] = {}
    for mode in args.modes.split(","):
        os.environ["BOTCTL_KNOWLEDGE_DENSE"] = "0" if mode == "fts" else "1"
        os.environ["BOTCTL_KNOWLEDGE_MODEL"] = "wordllama" if mode == "wordllama" else "minilm"
        results[mode] = {}
        print(f"\n== {mode}")
        if mode != "fts":
            for name, (ws, _) in spaces.items():  # (re)embeds every passage when the model changed
                t0 = time.perf_counter()
                report = knowledge.add(app, ws, [EVAL / name / "docs"])
                print(f"  {name}: {report.embedded} passages embedded in {time.perf_counter() - t0:.2f} s")
        for name, (ws, questions) in spaces.items():
            print(f"  {name}")
            results[mode][name] = evaluate(app.vault.conn, ws, questions, args.verbose)
        total = {
            k: sum(r[k] for r in results[mode].values())
            for k in ("answerable", "right", "unanswerable", "answered_anyway", "spanning", "both_cited")
        }
        results[mode]["overall"] = total
    print(f"\n{'mode':10}{'corpus':10}{'grounded+right':>16}{'answered anyway':>17}{'both cited':>12}")
    for mode, per in results.items():
        for name, r in per.items():
            print(
                f"{mode:10}{name:10}{r['right']:>7}/{r['answerable']:<3} {100 * r['right'] / r['answerable']:4.0f}%"
                f"{r['answered_anyway']:>8}/{r['unanswerable']:<3} {100 * r['answered_anyway'] / r['unanswerable']:4.0f}%"
                f"{r['both_cited']:>6}/{r['spanning']:<3}"
            )
    if args.json:
        from botctl.knowledge import embed as dense

        slim = {
            m: {c: {k: v for k, v in r.items() if k != "misses"} for c, r in per.items()}
            for m, per in results.items()
        }
        os.environ["BOTCTL_KNOWLEDGE_MODEL"] = "minilm"
        Path(args.json).write_text(json.dumps({"model": dense.model_info(), "results": slim}, indent=2))
    app.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
