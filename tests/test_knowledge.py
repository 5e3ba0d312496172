"""Knowledge: parsing and chunking, the per-workspace FTS5 index, grounded answers, the CLI.

The corpus in tests/data/knowledge is a small outdoor-gear store's help center: shipping (Markdown),
returns (Markdown with front matter), billing (HTML with nav, scripts, styles and a footer that must
not be indexed; they hold decoy words like "Mars" and "salary") and account help (plain text).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from botctl import knowledge, store, workspaces
from botctl.knowledge import index as knowledge_index
from botctl.knowledge.retrieve import _retrieve
from cluster_kit import free_port

CORPUS = Path(__file__).parent / "data" / "knowledge"

# (question, document, section) — the answer is in that section.
ANSWERABLE = [
    ("How long does standard shipping take?", "shipping.md", "Shipping methods and costs"),
    ("Do you ship to Canada?", "shipping.md", "International shipping"),
    ("Is shipping free?", "shipping.md", "Shipping methods and costs"),
    ("Do you deliver to PO boxes?", "shipping.md", "PO boxes and military addresses"),
    ("Do I have to pay customs duties?", "shipping.md", "International shipping"),
    ("How many days do I have to return an item?", "returns.md", "Return window"),
    ("When will I get my refund?", "returns.md", "Refunds"),
    ("Can I return a gift card?", "returns.md", "Items that cannot be returned"),
    ("My order arrived damaged, what should I do?", "returns.md", "Damaged or wrong items"),
    ("Can I exchange a jacket for a different size?", "returns.md", "Exchanges"),
    ("Do you accept PayPal?", "billing.html", "Accepted payment methods"),
    ("Do you take cash on delivery?", "billing.html", "Accepted payment methods"),
    ("When is my card charged?", "billing.html", "When you are charged"),
    ("Can I get a VAT invoice for my company?", "billing.html", "Invoices and receipts"),
    ("Can I use two promo codes on one order?", "billing.html", "Promo codes and gift cards"),
    ("Why was my payment declined?", "billing.html", "Payment declined"),
    ("How do I reset my password?", "account.txt", "Reset your password"),
    ("How do I delete my account?", "account.txt", "Delete your account"),
    ("How do I unsubscribe from the newsletter?", "account.txt", "Email newsletters"),
]

UNANSWERABLE = [
    "Do you ship to Mars?",
    "What is your CEO's salary?",
    "Can I pay with goats?",
    "Can I pay in bitcoin?",
    "What is the capital of France?",
    "Who won the World Cup in 2018?",
    "Do you sell electric bicycles?",
    "Is your warehouse haunted?",
    "Tell me a joke",
    "How much does shipping to Japan cost?",
    "Can I change my delivery address after ordering?",  # every word is in the corpus, not together
    "What are your store opening hours?",
    "Do you price match?",
    "shipping",  # a bare word that is everywhere: no particular passage answers it
    "",
    "what is it?",  # nothing but stop words
]

TICKET = {
    "name": "zendesk.create_ticket",
    "description": "Open a support ticket for the visitor.",
    "customer_specific": True,
    "connector": "zendesk",
    "params": {},
}
ORDERS = {
    "name": "shopify.get_my_order",
    "description": "One of the visitor's orders with items and tracking.",
    "customer_specific": True,
}
BOOKING = {
    "name": "calcom.book_meeting",
    "description": "Book a slot for the visitor (the visitor is the attendee).",
    "customer_specific": True,
}


@pytest.fixture
def acme(app):
    ws = workspaces.create(app, "acme", plan="pro")
    knowledge.add(app, ws, [CORPUS])
    return ws


@pytest.fixture
def knowledge_cli(cli, monkeypatch):
    """The `knowledge` group registered as the lead will register it in cli/lazy.py."""
    from botctl.cli import lazy

    monkeypatch.setitem(
        lazy.COMMANDS, "knowledge", ("botctl.cli.knowledge_cmd", "Documents and answers.", None)
    )
    return cli


def _audit(app, event):
    rows = (
        store.open_audit_reader(app.home)
        .execute("SELECT body FROM records WHERE event = ? ORDER BY seq", (event,))
        .fetchall()
    )
    return [json.loads(r[0]) for r in rows]


def _corpus_text(document: str) -> str:
    path = CORPUS / document
    kind = knowledge.KINDS[path.suffix]
    _, blocks = {
        "markdown": knowledge.parse_markdown,
        "html": knowledge.parse_html,
        "text": knowledge.parse_text,
    }[kind](path.read_text())
    return "\n".join(t for _, _, t in blocks)


# -- the stemmer and normalisation ----------------------------------------------------------------


def test_stemmer_matches_sqlite_porter_word_for_word():
    words = set()
    for f in list(CORPUS.iterdir()) + list(Path(knowledge.__file__).parent.rglob("*.py")):
        words |= set(re.findall(r"[a-z0-9]+", f.read_text(errors="ignore").lower()))
    words |= {
        "caresses",
        "ponies",
        "ties",
        "caress",
        "cats",
        "feed",
        "agreed",
        "plastered",
        "bled",
        "motoring",
        "sing",
        "conflated",
        "troubled",
        "sized",
        "hopping",
        "tanned",
        "falling",
        "hissing",
        "fizzed",
        "failing",
        "filing",
        "happy",
        "sky",
        "relational",
        "conditional",
        "rational",
        "valenci",
        "digitizer",
        "conformabli",
        "radicalli",
        "differentli",
        "vileli",
        "analogousli",
        "vietnamization",
        "predication",
        "operator",
        "feudalism",
        "decisiveness",
        "hopefulness",
        "callousness",
        "formaliti",
        "sensitiviti",
        "sensibiliti",
        "triplicate",
        "formative",
        "formalize",
        "electriciti",
        "electrical",
        "hopeful",
        "goodness",
        "revival",
        "allowance",
        "inference",
        "airliner",
        "gyroscopic",
        "adjustable",
        "defensible",
        "irritant",
        "replacement",
        "adjustment",
        "dependent",
        "adoption",
        "homologou",
        "communism",
        "activate",
        "angulariti",
        "homologous",
        "effective",
        "bowdlerize",
        "probate",
        "rate",
        "cease",
        "controll",
        "roll",
        "1990s",
        "2nd",
        "mp3s",
        "yyy",
        "syzygy",
        "queueing",
    }
    words = sorted(w for w in words if 3 <= len(w) <= 40)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'porter ascii')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    conn.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", list(enumerate(words, 1)))
    sqlite_stems = dict(conn.execute("SELECT doc, term FROM v"))
    mismatches = [
        (w, sqlite_stems[i], knowledge.stem(w))
        for i, w in enumerate(words, 1)
        if sqlite_stems[i] != knowledge.stem(w)
    ]
    assert len(words) > 1000 and mismatches == []


def test_query_terms_drop_stop_words_fold_diacritics_and_stem():
    assert knowledge.query_terms("Do you ship to Canadá?") == [("ship", "ship"), ("canada", "canada")]
    assert knowledge.query_terms("What is your CEO's salary?") == [("ceo", "ceo"), ("salary", "salari")]
    assert knowledge.query_terms("Shipping, SHIPPED, ships!") == [("shipping", "ship")]
    assert knowledge.query_terms("how do I do it?") == []
    assert len(knowledge.query_terms(" ".join(f"word{i}" for i in range(100)))) == knowledge.MAX_QUERY_TERMS


@pytest.mark.parametrize(
    "hostile",
    [
        '"',
        '""',
        '"unbalanced',
        "*",
        "ship*",
        "^ship",
        "-",
        "- refund",
        ":",
        "body:refund",
        "section : refund",
        "workspace_id:ws_x",
        "NEAR(shipping refund, 2)",
        "shipping OR",
        "OR OR OR",
        "AND",
        "NOT refund",
        "shipping AND NOT refund",
        "((((",
        "{title section}: refund",
        "'; DROP TABLE knowledge_fts; --",
        "\x00",
        "\\",
        "rank MATCH 'x'",
        "🚚 shipping 📦",
        'refund"); DELETE FROM knowledge_documents; --',
    ],
)
def test_hostile_queries_cannot_break_or_inject_into_match(app, acme, hostile):
    words = [w for w, _ in knowledge.query_terms(hostile)]
    expr = knowledge.match_expression(words)
    assert all(re.fullmatch(r'"[^"]*"', part) for part in expr.split(" OR ") if part), expr
    scoped = knowledge.scoped_match(acme.id, words)
    assert scoped == f'workspace_id : "{acme.id[3:]}" AND {{title section body}} : ({expr})'
    passages = knowledge.search(app.vault.conn, acme, hostile, 10)
    assert all(p.document in {"shipping.md", "returns.md", "billing.html", "account.txt"} for p in passages)
    result = knowledge.answer(app.vault.conn, acme, hostile)
    assert set(result) == {"answer", "grounded", "citations", "suggested_actions"}
    assert app.vault.conn.execute("SELECT count(*) FROM knowledge_documents").fetchone()[0] == 4


def test_random_queries_never_raise(app, acme):
    rng = random.Random(6)
    alphabet = "abcdefghij shipping refund \"*:^-+(){}[],.;'\\NEAROTAND\x00éß中🙂\t\n"
    for _ in range(300):
        q = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        knowledge.search(app.vault.conn, acme, q, 3)
        knowledge.answer(app.vault.conn, acme, q)


# -- parsing and chunking ---------------------------------------------------------------------------


def _sections(document: str) -> list[str]:
    doc = knowledge.parse_document(CORPUS / document, document)
    return [c.section for c in doc.chunks]


def test_markdown_sections_title_and_inline_markup():
    doc = knowledge.parse_document(CORPUS / "shipping.md", "shipping.md")
    assert doc.title == "Shipping" and doc.kind == "markdown"
    assert [c.section for c in doc.chunks] == [
        "Shipping",
        "Processing times",
        "Shipping methods and costs",
        "International shipping",
        "Tracking your order",
        "PO boxes and military addresses",
    ]
    methods = doc.chunks[2].text
    assert "- Standard (USPS Ground Advantage): 3–5 business days, $5.95" in methods  # ** removed, list kept
    tracking = doc.chunks[4].text
    assert "contact us and we will open a trace" in tracking and "https://" not in tracking
    assert "Account > Orders" in tracking  # emphasis removed, text kept
    returns = knowledge.parse_document(CORPUS / "returns.md", "returns.md")
    assert returns.title == "Returns and refunds" and "updated:" not in returns.chunks[0].text  # front matter


def test_html_drops_script_style_nav_footer_and_decodes_entities():
    doc = knowledge.parse_document(CORPUS / "billing.html", "billing.html")
    assert doc.title == "Payments & billing" and doc.kind == "html"
    assert [c.section for c in doc.chunks] == [
        "Accepted payment methods",
        "When you are charged",
        "Sales tax and VAT",
        "Promo codes and gift cards",
        "Invoices and receipts",
        "Payment declined",
    ]
    text = "\n".join(c.text for c in doc.chunks)
    for dropped in ("dataLayer", "gtag", "font-family", "Mars", "Sign in", "salary", "rights reserved"):
        assert dropped not in text
    assert "Apple Pay" in text and "Account > Orders" in text  # &nbsp; and &gt; decoded


def test_html_hidden_and_void_elements():
    title, blocks = knowledge.parse_html(
        "<h1>T</h1><input hidden><p>kept one</p><div hidden><p>secret draft</p></div>"
        "<p aria-hidden='true'>icon text</p><p>kept two<br>same block</p><ul><li>a</li><li>b</li></ul>"
    )
    texts = [t for _, _, t in blocks]
    assert texts == ["T", "kept one", "kept two same block", "a", "b"]
    assert [k for k, _, _ in blocks] == ["h", "p", "p", "li", "li"]


def test_plain_text_headings():
    doc = knowledge.parse_document(CORPUS / "account.txt", "account.txt")
    assert doc.title == "Your account" and doc.kind == "text"
    assert [c.section for c in doc.chunks] == [
        "Your account",
        "Reset your password",
        "Change your email address",
        "Delete your account",
        "Email newsletters",
    ]


def test_long_sections_are_split_into_80_to_250_word_chunks(tmp_path):
    rng = random.Random(1)
    vocab = "tent stake pole rainfly footprint vestibule zipper seam sealer guyline pack stove fuel".split()

    def paragraph(n_sentences):
        return " ".join(
            " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 16))).capitalize() + "."
            for _ in range(n_sentences)
        )

    body = "\n\n".join(paragraph(rng.randint(2, 6)) for _ in range(25))
    giant = paragraph(80)  # one paragraph, no blank line: split at sentences
    f = tmp_path / "gear.md"
    f.write_text(f"# Gear care\n\n## Tents\n\n{body}\n\n## Stoves\n\n{giant}\n\n## Short\n\nJust one line.\n")
    doc = knowledge.parse_document(f, "gear.md")
    sizes = {}
    for c in doc.chunks:
        sizes.setdefault(c.section, []).append(len(c.text.split()))
    assert len(sizes["Tents"]) >= 3 and len(sizes["Stoves"]) >= 3
    for section in ("Tents", "Stoves"):
        assert all(80 <= n <= 250 for n in sizes[section]), sizes
    assert sizes["Short"] == [3]  # a short section stays one chunk: a chunk never spans two sections
    assert sum(sizes["Tents"]) == len(body.split()) and sum(sizes["Stoves"]) == len(giant.split())


# -- adding, replacing, removing ------------------------------------------------------------------------


def _df_is_consistent(conn, ws_id):
    expected = {}
    for (stored,) in conn.execute("SELECT terms FROM knowledge_fts WHERE workspace_id = ?", (ws_id,)):
        for t in set(stored.split()) - {"|"}:
            expected[t] = expected.get(t, 0) + 1
    actual = dict(conn.execute("SELECT term, df FROM knowledge_terms WHERE workspace_id = ?", (ws_id,)))
    return expected == actual


def test_add_report_unchanged_is_a_noop_and_changed_replaces(app, tmp_path):
    ws = workspaces.create(app, "acme")
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    (docs / "images").mkdir()
    (docs / "images" / "logo.png").write_bytes(b"\x89PNG\r\n")
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD.md").write_text("# not a document\n\nref: refs/heads/main\n")
    report = knowledge.add(app, ws, [docs])
    assert sorted(report.added) == ["account.txt", "billing.html", "returns.md", "shipping.md"]
    assert report.skipped == [{"path": str(docs / "images" / "logo.png"), "reason": "unsupported file type"}]
    assert report.chunks == 24
    conn = app.vault.conn
    assert _df_is_consistent(conn, ws.id)
    before = {d.name: d for d in knowledge.list_docs(conn, ws)}
    assert len(_audit(app, "knowledge.added")) == 1

    again = knowledge.add(app, ws, [docs])
    assert again.added == [] and again.replaced == [] and sorted(again.unchanged) == sorted(before)
    assert len(_audit(app, "knowledge.added")) == 1  # a no-op writes nothing
    assert {d.name: d for d in knowledge.list_docs(conn, ws)} == before

    f = docs / "shipping.md"
    f.write_text(f.read_text().replace("We ship to Canada", "We ship to Canada, Mexico"))
    changed = knowledge.add(app, ws, [f])
    assert changed.replaced == ["shipping.md"] and changed.added == []
    assert _df_is_consistent(conn, ws.id)
    after = {d.name: d for d in knowledge.list_docs(conn, ws)}
    assert after["shipping.md"].sha256 != before["shipping.md"].sha256
    assert after["shipping.md"].added_at == before["shipping.md"].added_at
    assert (
        conn.execute("SELECT count(*) FROM knowledge_fts WHERE workspace_id = ?", (ws.id,)).fetchone()[0]
        == 24
    )
    assert knowledge.answer(conn, ws, "Do you ship to Mexico?")["grounded"] is True
    record = _audit(app, "knowledge.added")[-1]
    assert record["workspace"] == "acme"
    assert record["detail"]["documents"][0]["name"] == "shipping.md"
    assert record["detail"]["documents"][0]["change"] == "replaced"


def test_remove_and_audit_records_carry_no_content(app, acme):
    conn = app.vault.conn
    removed = knowledge.remove(app, acme, "billing.html")
    assert removed.name == "billing.html"
    assert [d.name for d in knowledge.list_docs(conn, acme)] == ["account.txt", "returns.md", "shipping.md"]
    assert (
        conn.execute(
            "SELECT count(*) FROM knowledge_fts WHERE document_id NOT IN (SELECT id FROM knowledge_documents)"
        ).fetchone()[0]
        == 0
    )
    assert _df_is_consistent(conn, acme.id)
    assert knowledge.answer(conn, acme, "Do you accept PayPal?")["grounded"] is False
    from botctl.errors import NotFound

    with pytest.raises(NotFound) as exc:
        knowledge.remove(app, acme, "billing.html")
    assert exc.value.code == "unknown_document"
    (rec,) = _audit(app, "knowledge.removed")
    assert rec["detail"] == {"document": "billing.html", "sha256": removed.sha256, "chunks": 6}
    bodies = ",".join(
        r[0] for r in store.open_audit_reader(app.home).execute("SELECT body FROM records").fetchall()
    )
    for doc in ("shipping.md", "returns.md", "billing.html", "account.txt"):
        for sentence in re.split(r"(?<=[.!?])\s+", _corpus_text(doc)):
            if len(sentence) > 25:
                assert sentence not in bodies


def test_bad_inputs_add_nothing(app, tmp_path):
    from botctl.errors import UsageError

    ws = workspaces.create(app, "acme")
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nA perfectly fine paragraph about tents.\n")
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "markup.html").write_text("<html><script>var x = 1;</script><nav>Home</nav></html>")
    (tmp_path / "manual.pdf").write_bytes(b"%PDF-1.7")
    (tmp_path / "binary.txt").write_bytes(b"abc\x00def")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "faq.md").write_text("# A\n\nalpha\n")
    (tmp_path / "b" / "faq.md").write_text("# B\n\nbeta\n")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "x.png").write_bytes(b"png")
    cases = {
        "missing.md": "no such file or folder",
        "empty.md": "no text to index",
        "markup.html": "no text to index",
        "manual.pdf": "unsupported file type '.pdf'",
        "binary.txt": "not a text file",
        "pics": "no Markdown, text or HTML files",
    }
    for name, message in cases.items():
        with pytest.raises(UsageError) as exc:
            knowledge.add(app, ws, [good, tmp_path / name])
        assert message in exc.value.message and "\n" not in exc.value.message
        assert exc.value.exit_code == 2
    with pytest.raises(UsageError, match="both be document 'faq.md'"):
        knowledge.add(app, ws, [tmp_path / "a" / "faq.md", tmp_path / "b" / "faq.md"])
    assert knowledge.list_docs(app.vault.conn, ws) == []
    assert app.vault.conn.execute("SELECT count(*) FROM knowledge_fts").fetchone()[0] == 0
    assert _audit(app, "knowledge.added") == []


def test_a_failure_inside_the_transaction_rolls_everything_back(app, tmp_path, monkeypatch):
    ws = workspaces.create(app, "acme")
    calls = {"n": 0}
    real = knowledge_index._insert_chunks

    def flaky(conn, ws_id, doc_id, doc):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        real(conn, ws_id, doc_id, doc)

    monkeypatch.setattr(knowledge_index, "_insert_chunks", flaky)
    with pytest.raises(RuntimeError):
        knowledge.add(app, ws, [CORPUS])
    conn = app.vault.conn
    assert conn.execute("SELECT count(*) FROM knowledge_documents").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM knowledge_fts").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM knowledge_terms").fetchone()[0] == 0


# -- isolation -------------------------------------------------------------------------------------------


def _globex(app, tmp_path):
    ws = workspaces.create(app, "globex", plan="pro")
    d = tmp_path / "globex"
    d.mkdir()
    (d / "widgets.md").write_text(
        "# Quantum widgets\n\n## Warranty\n\nEvery quantum widget carries a ten year warranty against flux "
        "decay. Shipping of replacement widgets is free worldwide, including to Mars colonies.\n\n"
        "## Returns\n\nWidgets can be returned within 90 days. You can pay for repairs in goats on request.\n"
    )
    knowledge.add(app, ws, [d])
    return ws


def test_no_query_returns_another_workspaces_passage(app, acme, tmp_path):
    globex = _globex(app, tmp_path)
    conn = app.vault.conn
    acme_docs = {"shipping.md", "returns.md", "billing.html", "account.txt"}
    for q in (
        "quantum widget warranty flux",
        "widgets",
        'workspace_id: "' + globex.id + '"',
        globex.id,
        "widgets.md Quantum widgets",
    ):
        assert knowledge.search(conn, acme, q, 50) == []  # words only globex's documents hold
        assert knowledge.answer(conn, acme, q)["grounded"] is False
    for q in ("Do you ship to Mars?", "Can I pay with goats?"):  # globex would answer these
        assert knowledge.answer(conn, globex, q)["grounded"] is True
        assert {p.document for p in knowledge.search(conn, acme, q, 50)} <= acme_docs
        assert knowledge.answer(conn, acme, q)["grounded"] is False
    assert knowledge.answer(conn, globex, "Does a quantum widget have a warranty?")["grounded"] is True
    for q in ("shipping refund returns", "Do you accept PayPal?", "password"):
        assert {p.document for p in knowledge.search(conn, globex, q, 50)} <= {"widgets.md"}
        assert {p.document for p in knowledge.search(conn, acme, q, 50)} <= acme_docs
    assert {d.name for d in knowledge.list_docs(conn, acme)} == acme_docs
    from botctl.errors import NotFound

    with pytest.raises(NotFound):
        knowledge.remove(app, acme, "widgets.md")

    # Beyond the index-level scoping, the SQL checks the rows it returns: forged index rows (an acme row
    # pointing at a globex document, a globex row pointing at an acme document) reach neither workspace.
    def some_doc(ws):
        return conn.execute(
            "SELECT id FROM knowledge_documents WHERE workspace_id = ? LIMIT 1", (ws.id,)
        ).fetchone()[0]

    with store.transaction(conn):
        for ws_id, doc_id in ((acme.id, some_doc(globex)), (globex.id, some_doc(acme))):
            conn.execute(
                "INSERT INTO knowledge_fts (title, section, body, workspace_id, document_id, terms) "
                "VALUES ('x', 'Forged', 'zanzibar zanzibar', ?, ?, 'zanzibar | zanzibar')",
                (ws_id, doc_id),
            )
    assert knowledge.search(conn, acme, "zanzibar", 5) == []
    assert knowledge.search(conn, globex, "zanzibar", 5) == []


def test_another_workspace_cannot_move_this_ones_scores(app, acme, tmp_path):
    conn = app.vault.conn
    questions = [q for q, _, _ in ANSWERABLE] + UNANSWERABLE
    before = [
        (
            knowledge.answer(conn, acme, q),
            [(p.document, p.section, round(p.score, 9)) for p in knowledge.search(conn, acme, q, 5)],
        )
        for q in questions
    ]
    other = workspaces.create(app, "flood")
    d = tmp_path / "flood"
    d.mkdir()
    for i in range(30):  # lots of shipping/refund text in another tenant skews FTS5's global statistics
        (d / f"f{i}.md").write_text(
            f"# Flood {i}\n\n## Shipping\n\nShipping refund return order card payment "
            f"shipping shipping Canada PayPal password {i}.\n"
        )
    knowledge.add(app, other, [d])
    after = [
        (
            knowledge.answer(conn, acme, q),
            [(p.document, p.section, round(p.score, 9)) for p in knowledge.search(conn, acme, q, 5)],
        )
        for q in questions
    ]
    assert after == before


def test_deleted_workspace_leaves_no_index_rows(app, acme, tmp_path):
    conn = app.vault.conn
    old_id = acme.id
    workspaces.delete(app, "acme")  # documents and terms cascade; index rows become orphans ...
    again = workspaces.create(app, "acme")
    assert knowledge.search(conn, again, "refund", 5) == []  # ... that no query can reach
    _globex(app, tmp_path)  # the next change purges them
    assert (
        conn.execute("SELECT count(*) FROM knowledge_fts WHERE workspace_id = ?", (old_id,)).fetchone()[0]
        == 0
    )
    # purge_workspace: what workspaces.delete can call to drop the index in its own transaction
    with store.transaction(conn):
        n = knowledge.purge_workspace(conn, workspaces.get(conn, "globex").id)
    assert n == 2 and conn.execute("SELECT count(*) FROM knowledge_fts").fetchone()[0] == 0


# -- grounded answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("question", "document", "section"), ANSWERABLE)
def test_answerable_questions_cite_the_right_section(app, acme, question, document, section):
    result = knowledge.answer(app.vault.conn, acme, question)
    assert result["grounded"] is True, result
    first = result["citations"][0]
    assert (first["document"], first["section"]) == (document, section)
    # Extractive: every line of the answer is text of the cited documents, verbatim.
    cited = "\n".join(_corpus_text(c["document"]) for c in result["citations"])
    for part in re.split(r"\n+", result["answer"]):
        for sentence in knowledge.split_sentences(part):
            assert sentence.lstrip("- ") in cited, sentence
    for c in result["citations"]:
        assert c["excerpt"] and set(c) == {"document", "section", "excerpt"}


def test_answers_hold_the_facts_asked_for(app, acme):
    conn = app.vault.conn
    facts = {
        "How long does standard shipping take?": "3–5 business days",
        "Do you ship to Canada?": "Canada",
        "When will I get my refund?": "5–10 business days",
        "Can I return a gift card?": "- gift cards",
        "How many days do I have to return an item?": "within 30 days",
        "Do you take cash on delivery?": "We do not accept cash on delivery",
    }
    for question, fact in facts.items():
        assert fact in knowledge.answer(conn, acme, question)["answer"], question


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_say_so_without_citations(app, acme, question):
    result = knowledge.answer(app.vault.conn, acme, question)
    assert result["grounded"] is False, result
    assert result["citations"] == []
    assert result["answer"].startswith("Sorry, I don't know the answer to that")
    assert result["suggested_actions"] == []


def test_unknown_offers_a_ticket_then_what_the_bot_can_do(app, acme):
    conn = app.vault.conn
    r = knowledge.answer(conn, acme, "Can I pay with goats?", available_actions=[BOOKING, ORDERS, TICKET])
    assert r["grounded"] is False and r["citations"] == []
    assert "open a support ticket" in r["answer"]
    assert [a["name"] for a in r["suggested_actions"]] == [
        "zendesk.create_ticket",
        "calcom.book_meeting",
        "shopify.get_my_order",
    ]
    assert r["suggested_actions"][0] == {
        "name": "zendesk.create_ticket",
        "description": "Open a support ticket for the visitor.",
        "customer_specific": True,
    }
    r = knowledge.answer(conn, acme, "Can I pay with goats?", available_actions=[BOOKING])
    assert "Here is what I can do: book meeting." in r["answer"]
    r = knowledge.answer(conn, acme, "Can I pay with goats?")
    assert "contact the support team" in r["answer"] and r["suggested_actions"] == []


def test_grounded_answers_suggest_only_related_actions(app, acme):
    r = knowledge.answer(
        app.vault.conn, acme, "How do I track my order?", available_actions=[TICKET, BOOKING, ORDERS]
    )
    assert r["grounded"] is True and r["citations"][0]["section"] == "Tracking your order"
    assert [a["name"] for a in r["suggested_actions"]] == ["shopify.get_my_order"]


def test_empty_workspace_knows_nothing(app):
    ws = workspaces.create(app, "blank")
    assert knowledge.search(app.vault.conn, ws, "shipping", 5) == []
    assert knowledge.answer(app.vault.conn, ws, "Do you ship to Canada?")["grounded"] is False


def test_search_ranks_and_excerpts(app, acme):
    passages = knowledge.search(app.vault.conn, acme, "refund gift card", 3)
    assert len(passages) == 3 and passages[0].score >= passages[1].score >= passages[2].score
    assert passages[0].as_dict().keys() == {"document", "title", "section", "excerpt", "score"}
    assert all(len(p.excerpt.split()) <= 46 for p in passages)
    assert knowledge.search(app.vault.conn, acme, "salary", 5) == []  # the HTML footer was not indexed


def test_thresholds_keep_a_margin_on_the_corpus(app, acme):
    """The calibration, as numbers: where the answerable and unanswerable questions fall."""
    conn = app.vault.conn

    def best(q):
        _, ps = _retrieve(conn, acme.id, q, knowledge.CANDIDATES)
        return ps[0] if ps else None

    tops = [best(q) for q, _, _ in ANSWERABLE]
    assert min(p.coverage for p in tops) >= knowledge.MIN_COVERAGE + 0.05
    assert min(p.strength for p in tops) >= knowledge.MIN_STRENGTH + 0.1
    for q in UNANSWERABLE:  # answer() takes any candidate that passes, so check them all
        _, passages = _retrieve(conn, acme.id, q, knowledge.CANDIDATES)
        for p in passages:
            assert (
                p.coverage <= knowledge.MIN_COVERAGE - 0.04 or p.strength <= knowledge.MIN_STRENGTH - 0.1
            ), q


# -- optional LLM phrasing --------------------------------------------------------------------------------


@pytest.fixture
def fake_llm():
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that replies what the test sets."""
    state = {"reply": "", "requests": [], "status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
            )
            data = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": state["reply"]}}]}
            ).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def test_llm_unreachable_falls_back_to_the_extractive_answer(app, acme, monkeypatch):
    conn = app.vault.conn
    offline = knowledge.answer(conn, acme, "Do you ship to Canada?")
    monkeypatch.setenv("BOTCTL_LLM_URL", f"http://127.0.0.1:{free_port()}/v1")
    assert knowledge.answer(conn, acme, "Do you ship to Canada?") == offline
    assert knowledge.answer(conn, acme, "Do you ship to Mars?")["grounded"] is False


def test_llm_phrases_from_the_passages_and_keeps_citations(app, acme, monkeypatch, fake_llm):
    conn = app.vault.conn
    monkeypatch.setenv("BOTCTL_LLM_URL", fake_llm["url"])
    monkeypatch.setenv("BOTCTL_LLM_API_KEY", "sk-test")
    monkeypatch.setenv("BOTCTL_LLM_MODEL", "tiny")
    offline_citations = None
    fake_llm["reply"] = "Yes, we ship to Canada with DHL Express, usually in 5–10 business days [1]."
    r = knowledge.answer(conn, acme, "Do you ship to Canada?")
    assert r["answer"] == "Yes, we ship to Canada with DHL Express, usually in 5–10 business days."
    assert r["grounded"] is True and [c["section"] for c in r["citations"]] == ["International shipping"]
    (req,) = fake_llm["requests"]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "tiny" and req["body"]["temperature"] == 0
    system, user = req["body"]["messages"]
    assert "ONLY the numbered passages" in system["content"] and "outside knowledge" in system["content"]
    assert "[1] Shipping — International shipping (shipping.md)" in user["content"]
    assert user["content"].endswith("Question: Do you ship to Canada?")

    monkeypatch.delenv("BOTCTL_LLM_URL")
    offline = knowledge.answer(conn, acme, "Do you ship to Canada?")
    offline_citations = offline["citations"]
    monkeypatch.setenv("BOTCTL_LLM_URL", fake_llm["url"])
    for bad in (
        "We ship to Canada [2].",  # cites a passage it was not given
        "We ship to Canada.",  # cites nothing
        "We ship to Canada in 2 days [1].",  # a number the passage does not hold
        "NOT_IN_PASSAGES",  # declines
        "[1]",
    ):  # nothing but a marker
        fake_llm["reply"] = bad
        assert knowledge.answer(conn, acme, "Do you ship to Canada?") == offline, bad
    fake_llm["status"] = 500
    fake_llm["reply"] = "We ship to Canada [1]."
    assert knowledge.answer(conn, acme, "Do you ship to Canada?")["citations"] == offline_citations
    n = len(fake_llm["requests"])
    knowledge.answer(conn, acme, "Do you ship to Mars?")
    assert len(fake_llm["requests"]) == n  # no passages, no model call


def test_llm_async_variant(app, acme, monkeypatch, fake_llm):
    import asyncio

    conn = app.vault.conn
    monkeypatch.setenv("BOTCTL_LLM_URL", fake_llm["url"] + "/v1/chat/completions")
    fake_llm["reply"] = "Refunds go to your original payment method within 5–10 business days [1]."
    r = asyncio.run(knowledge.answer_async(conn, acme, "When will I get my refund?"))
    assert r["answer"].startswith("Refunds go to your original payment method")
    assert [c["section"] for c in r["citations"]] == ["Refunds"]
    monkeypatch.setenv("BOTCTL_LLM_URL", f"http://127.0.0.1:{free_port()}")
    assert asyncio.run(knowledge.answer_async(conn, acme, "When will I get my refund?")) == knowledge.answer(
        conn, acme, "When will I get my refund?"
    )


# -- CLI ----------------------------------------------------------------------------------------------


def test_cli_round_trip(knowledge_cli, tmp_path):
    cli = knowledge_cli
    assert cli("workspace", "create", "acme").code == 0
    r = cli("knowledge", "add", "-w", "acme", str(CORPUS), "--json")
    assert r.code == 0, r.err
    assert sorted(r.json()["added"]) == ["account.txt", "billing.html", "returns.md", "shipping.md"]
    r = cli("knowledge", "add", "-w", "acme", str(CORPUS))
    assert r.code == 0 and "0 added, 0 replaced, 4 unchanged" in r.err

    r = cli("knowledge", "list", "-w", "acme", "--json")
    assert r.code == 0 and [d["name"] for d in r.json()] == [
        "account.txt",
        "billing.html",
        "returns.md",
        "shipping.md",
    ]
    r = cli("knowledge", "list", "-w", "acme")
    assert r.code == 0 and r.out.splitlines()[0].startswith("account.txt\tYour account\ttext\t5\t")

    r = cli("knowledge", "search", "-w", "acme", "gift card refund", "--json", "-n", "2")
    assert (
        r.code == 0
        and len(r.json()) == 2
        and set(r.json()[0]) == {"document", "title", "section", "excerpt", "score"}
    )

    r = cli("knowledge", "ask", "-w", "acme", "Do you ship to Canada?", "--json")
    assert r.code == 0
    assert set(r.json()) == {"answer", "grounded", "citations"} and r.json()["grounded"] is True
    assert r.json()["citations"][0]["section"] == "International shipping"
    r = cli("knowledge", "ask", "-w", "acme", "Do you ship to Canada?")
    assert r.code == 0 and "Sources:\n  [1] shipping.md — International shipping" in r.out
    r = cli("knowledge", "ask", "-w", "acme", "Can I pay with goats?", "--json")
    assert r.code == 0 and r.json() == {"answer": r.json()["answer"], "grounded": False, "citations": []}

    r = cli("knowledge", "remove", "-w", "acme", "billing.html")
    assert r.code == 0 and "removed billing.html (6 passages)" in r.err
    r = cli("knowledge", "remove", "-w", "acme", "billing.html")
    assert r.code == 3 and r.err.startswith("error: no document 'billing.html' in workspace 'acme'.")


def test_cli_errors_and_exit_codes(knowledge_cli, tmp_path):
    cli = knowledge_cli
    assert cli("workspace", "create", "acme").code == 0
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / "empty.txt").write_text("  \n")
    for args, code, first_line in [
        (
            ["add", "-w", "acme", str(tmp_path / "nope.md")],
            2,
            f"error: {tmp_path / 'nope.md'}: no such file or folder.",
        ),
        (
            ["add", "-w", "acme", str(CORPUS / "shipping.md"), str(tmp_path / "notes.pdf")],
            2,
            f"error: {tmp_path / 'notes.pdf'}: unsupported file type '.pdf'.",
        ),
        (
            ["add", "-w", "acme", str(tmp_path / "empty.txt")],
            2,
            f"error: {tmp_path / 'empty.txt'}: no text to index",
        ),
        (["add", "-w", "nope", str(CORPUS)], 3, "error: no workspace named 'nope'."),
        (["list", "-w", "nope"], 3, "error: no workspace named 'nope'."),
        (["ask", "-w", "nope", "hi"], 3, "error: no workspace named 'nope'."),
        (["search", "-w", "acme", "x", "-n", "0"], 2, ""),
    ]:
        r = cli("knowledge", *args)
        assert r.code == code, (args, r.err)
        assert r.err.startswith(first_line), (args, r.err)
        assert "Traceback" not in r.err
    assert cli("knowledge", "list", "-w", "acme", "--json").json() == []  # shipping.md was not half-added
    r = cli("knowledge", "add", "-w", "acme", str(tmp_path / "notes.pdf"), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "invalid_document"


def test_migration_adds_the_knowledge_schema(home):
    home.ensure()
    conn = store.connect(home.vault_db)
    store.migrate(conn, store.VAULT_MIGRATIONS, what="t", target=5)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'knowledge%'").fetchone()[0] == 0
    store.migrate(conn, store.VAULT_MIGRATIONS, what="t")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'knowledge%'")}
    assert {"knowledge_documents", "knowledge_terms", "knowledge_fts"} <= names
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'knowledge_fts'").fetchone()[0]
    assert "porter unicode61 remove_diacritics 2" in sql
