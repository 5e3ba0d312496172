"""How hybrid.CALIBRATION was chosen: a grid search on bench/knowledge_eval, two corpora to fit, one to check.

Every corpus is added to its own workspace (the real `knowledge.add`: chunks, FTS5, vectors of the chosen
model); every question goes through `hybrid.retrieve`, which gives each candidate passage (all of the
workspace's passages the model ranks, and FTS5's) its cosine (best sentence), heading cosine, coverage
and strength. Offline, for each (heading weight, coverage weight, strength weight, threshold) of the
grid, the best passage by ``cosine + hw * heading + cw * coverage + sw * min(strength, 1.5)`` is
grounded when it reaches the threshold (and not
every question word is unknown to the workspace): the setting kept is the one that answers the most
answerable questions with a right citation while answering at most 5% of the unanswerable ones, on the
fitting corpora. Printed: the fit on store + saas (the shipped one) checked on clinic, the two other
leave-one-out fits, and the fit on all three.

    python bench/calibrate_knowledge.py [--model minilm|wordllama]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

from bench_knowledge_eval import CORPORA, EVAL, cites, load_questions

GRID = {
    "hw": [0.0, 0.25, 0.5],
    "cw": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    "sw": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3],
    "t": [round(0.30 + 0.01 * i, 2) for i in range(151)],
}
MAX_ANSWERED_ANYWAY = 0.05


Row = tuple[bool, bool, list[tuple[float, float, float, float, bool]]]


def features(model: str) -> dict[str, list[Row]]:
    """corpus → [(answerable, all words unknown, [(cosine, heading, coverage, strength, right section)])]."""
    tmp = Path(tempfile.mkdtemp(prefix="botctl-calibrate-"))
    os.environ.update(
        BOTCTL_HOME=str(tmp / "home"),
        BOTCTL_NO_KEYRING="1",
        BOTCTL_KNOWLEDGE_DENSE="1",
        BOTCTL_KNOWLEDGE_MODEL=model,
    )
    from botctl import knowledge, workspaces
    from botctl.home import Home
    from botctl.knowledge import hybrid
    from botctl.session import Session

    hybrid.DENSE_CANDIDATES = 10_000  # every passage: the fusion is redone offline
    app = Session(Home.resolve(None))
    out = {}
    for name in CORPORA:
        ws = workspaces.create(app, f"cal-{name}")
        knowledge.add(app, ws, [EVAL / name / "docs"])
        rows = []
        for q in load_questions(EVAL / name / "questions.txt"):
            query, _, d = hybrid.retrieve(app.vault.conn, ws.id, q.text, knowledge.CANDIDATES)
            unknown = bool(query.terms) and all(query.idf[s] >= query.idf_max - 1e-9 for _, s in query.terms)
            cands = [
                (
                    r.cosine,
                    r.heading,
                    r.passage.coverage,
                    r.passage.strength,
                    any(
                        cites({"document": r.passage.document, "section": r.passage.section}, e)
                        for e in q.expected
                    ),
                )
                for r in d.ranked
            ]
            rows.append((bool(q.expected), unknown, cands))
        out[name] = rows
    app.close()
    return out


def score(rows, hw: float, cw: float, sw: float, t: float) -> tuple[float, float]:
    right = anyway = answerable = unanswerable = 0
    for is_answerable, unknown, cands in rows:
        answerable += is_answerable
        unanswerable += not is_answerable
        if not cands:
            continue
        cos, head, cov, strength, ok = max(
            cands, key=lambda c: c[0] + hw * c[1] + cw * c[2] + sw * min(c[3], 1.5)
        )
        grounded = cos + hw * head + cw * cov + sw * min(strength, 1.5) >= t and not (cov == 0 and unknown)
        right += grounded and is_answerable and ok
        anyway += grounded and not is_answerable
    return right / answerable, anyway / unanswerable


def fit(rows) -> tuple[float, float, float, float]:
    def key(g):
        right, anyway = score(rows, *g)
        return (anyway <= MAX_ANSWERED_ANYWAY, right, -anyway)

    return max(itertools.product(GRID["hw"], GRID["cw"], GRID["sw"], GRID["t"]), key=key)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm", choices=["minilm", "wordllama"])
    args = ap.parse_args()
    data = features(args.model)
    print(
        f"model {args.model}: (heading weight, coverage weight, strength weight, threshold) -> right, "
        "answered anyway"
    )
    for held in reversed(CORPORA):
        fitted = [n for n in CORPORA if n != held]
        g = fit([r for n in fitted for r in data[n]])
        fr, fa = score([r for n in fitted for r in data[n]], *g)
        hr, ha = score(data[held], *g)
        print(
            f"  fit on {'+'.join(fitted):13} {g}: {100 * fr:.0f}% / {100 * fa:.0f}%; held-out {held}: "
            f"{100 * hr:.0f}% / {100 * ha:.0f}%"
        )
    g = fit([r for n in CORPORA for r in data[n]])
    print(
        f"  fit on all three {g}: "
        + ", ".join(
            f"{n} {100 * score(data[n], *g)[0]:.0f}% / {100 * score(data[n], *g)[1]:.0f}%" for n in CORPORA
        )
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
