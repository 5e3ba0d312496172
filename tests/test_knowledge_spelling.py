"""Typos read as the workspace's own words (botctl/knowledge/spelling.py): through the real index and
answer path, FTS5 alone (the correction is in the lexical half, the model is not needed to test it)."""

from __future__ import annotations

import pytest

from botctl import knowledge, workspaces
from botctl.knowledge import spelling
from botctl.knowledge.text import stem

DOC = """# Orders

## Changing your delivery address

If the delivery address on your order is wrong, you can change it until the order ships.

## Care

Wash the jacket cold. Do not use fabric softener: it clogs the membrane. The zip can be replaced.
"""


@pytest.fixture(autouse=True)
def fts_only(isolated, monkeypatch):
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "0")


def _workspace(app, tmp_path, name: str, text: str):
    ws = workspaces.create(app, name, plan="pro")
    docs = tmp_path / name
    docs.mkdir()
    (docs / "help.md").write_text(text)
    knowledge.add(app, ws, [docs])
    return ws


def test_a_typo_is_read_as_the_workspaces_word(app, tmp_path):
    conn = app.vault.conn
    ws = _workspace(app, tmp_path, "store", DOC)
    for question, section, read in (
        ("wrong adress on my order", "Changing your delivery address", {"adress": "address"}),
        ("can i use fabric softner", "Care", {"softner": "soften"}),
    ):
        why = knowledge.explain(conn, ws, question)
        assert why["decision"]["corrected"] == read
        r = why["result"]
        assert r["grounded"], question
        assert r["citations"][0]["section"].endswith(section)
    # Spelled right, nothing is corrected; the answer is the same.
    r = knowledge.explain(conn, ws, "wrong address on my order")
    assert r["decision"]["corrected"] == {}
    assert r["result"] == knowledge.explain(conn, ws, "wrong adress on my order")["result"]


def test_the_explanation_says_how_a_word_was_read(app, tmp_path, cli):
    _workspace(app, tmp_path, "store", DOC)
    r = cli("knowledge", "ask", "-w", "store", "--explain", "wrong adress on my order")
    assert r.code == 0, r.err
    assert (
        "Read (words the documents do not use, one letter from words they do): 'adress' as 'address'" in r.out
    )


def test_english_words_and_short_words_are_not_typos(app, tmp_path):
    conn = app.vault.conn
    ws = _workspace(app, tmp_path, "store", DOC)
    # "ripped" is one letter from "zipped" (the documents' "zip"), but it is a word: left as it is.
    assert knowledge.explain(conn, ws, "my jacket arrived ripped")["decision"]["corrected"] == {}
    # Too short to tell a typo from another word; digits; letters outside a-z.
    for word in ("adres"[:4], "addr3ss", "adréss"):
        assert spelling.corrections(conn, ws.id, [(word, stem(word))]) == {}


def test_a_correction_only_lands_on_this_workspaces_words(app, tmp_path):
    conn = app.vault.conn
    store = _workspace(app, tmp_path, "store", DOC)
    other = _workspace(app, tmp_path, "clinic", "# Clinic\n\n## Opening hours\n\nWe open at eight.\n")
    assert spelling.corrections(conn, store.id, [("adress", "adress")]) == {"adress": ("address", 1)}
    # The other tenant's documents never say "address": its typo stays unread, and nothing of the
    # store's vocabulary or passages shows through.
    assert spelling.corrections(conn, other.id, [("adress", "adress")]) == {}
    r = knowledge.explain(conn, other, "wrong adress on my order")
    assert r["decision"]["corrected"] == {} and r["result"]["grounded"] is False


def test_a_question_written_to_be_expensive_stays_bounded(app, tmp_path):
    conn = app.vault.conn
    ws = _workspace(app, tmp_path, "store", DOC)
    long_word = "adress" * 5  # longer than MAX_LENGTH: not looked at
    assert spelling.corrections(conn, ws.id, [(long_word, stem(long_word))]) == {}
    # Only the first MAX_WORDS unknown words are corrected.
    words = ["zzzzq", "qzzzz", "zqzzz", "adress"]
    assert spelling.corrections(conn, ws.id, [(w, stem(w)) for w in words]) == {}
    assert spelling.corrections(conn, ws.id, [(w, stem(w)) for w in words[-1:]]) == {"adress": ("address", 1)}
    r = knowledge.answer(conn, ws, " ".join(["xqxqxqxqxqxqxqxqxqxq"] * 50 + ["adress"]))
    assert r["grounded"] is False


def test_edits_are_the_four_kinds_of_typing_error():
    e = spelling.edits("adress")
    assert {"address", "adres", "daress", "adreds"} <= e  # insertion, deletion, swap, change
    assert "adress" not in e and len(e) == len(set(e))
