"""The widget's operator side (issue #20), without a browser: `botctl widget` settings and their checks,
documents' help-center URLs and the titles sources show, the vote records behind `knowledge feedback`,
and the action descriptions visitors read. The browser half: tests/browser/test_widget_visitor_browser.py."""

from __future__ import annotations

import json
import time

import pytest

from botctl import feedback
from botctl.knowledge.links import cite, document_url, front_matter_url

# -- botctl widget ------------------------------------------------------------------------------------


@pytest.fixture
def acme(cli):
    assert cli("workspace", "create", "acme").code == 0
    return "acme"


def test_widget_settings_round_trip_and_audit(cli, acme):
    r = cli(
        "widget",
        "set",
        "-w",
        acme,
        "--accent",
        "#1F5F4A",
        "--logo",
        "/static/logo.svg",
        "--locale",
        "fr",
        "--support-contact",
        "Email help@acme.test",
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json() == {
        "accent": "#1f5f4a",
        "logo": "/static/logo.svg",
        "locale": "fr",
        "support_contact": "Email help@acme.test",
    }
    assert cli("widget", "set", "-w", acme, "--clear", "logo", "--json").json() == {
        "accent": "#1f5f4a",
        "locale": "fr",
        "support_contact": "Email help@acme.test",
    }
    assert cli("widget", "show", "-w", acme, "--json").json()["accent"] == "#1f5f4a"
    records = [
        json.loads(line)
        for line in cli("audit", "-w", acme, "--event", "widget.updated", "--json").out.splitlines()
    ]
    assert [r["detail"]["changed"] for r in records] == [
        ["accent", "locale", "logo", "support_contact"],
        ["logo"],
    ]


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--accent", "red"),
        ("--accent", "#12345g"),
        ("--accent", "#fff;}:host{display:none"),
        ("--logo", "javascript:alert(1)"),
        ("--logo", "http://cdn.acme.test/logo.svg"),
        ("--logo", "//evil.test/x.svg"),
        ("--logo", "https://user:pw@cdn.acme.test/x.svg"),
        ("--logo", "/a b.svg"),
        ("--logo", "data:image/svg+xml,<svg/>"),
        ("--locale", "xx"),
        ("--support-contact", "   "),
        ("--support-contact", "x" * 501),
        ("--support-contact", "Call us\u202e today"),
    ],
)
def test_widget_settings_refuse_what_is_not_safe_to_publish(cli, acme, flag, value):
    r = cli("widget", "set", "-w", acme, flag, value)
    assert r.code == 2 and "error:" in r.err and "Traceback" not in r.err, r.err
    assert cli("widget", "show", "-w", acme, "--json").json() == {}  # nothing changed


def test_widget_set_needs_something_and_a_known_workspace(cli, acme):
    assert cli("widget", "set", "-w", acme).code == 2
    assert cli("widget", "set", "-w", acme, "--clear", "colour").code == 2
    r = cli("widget", "set", "-w", "nope", "--accent", "#fff")
    assert r.code == 3 and "no workspace named 'nope'" in r.err


def test_widget_config_carries_theme_and_handoff(app, cli, acme):
    from botctl import workspaces
    from botctl.provider.state import Provider

    cli("widget", "set", "-w", acme, "--accent", "#123456", "--support-contact", "Ring 555")
    prov = Provider.__new__(Provider)  # only its lookups: no daemon, no vendor pool
    prov.app = app
    cfg = prov.widget_config(workspaces.get(app.vault.conn, acme))
    assert cfg["theme"] == {"accent": "#123456"}
    assert cfg["handoff"] == {"action": None, "contact": "Ring 555"}  # no help desk connected
    assert cfg["features"]["feedback"] is True and cfg["features"]["handoff"] is True


# -- sources: titles and help-center URLs ---------------------------------------------------------------


def test_document_urls_from_url_base_and_front_matter(cli, acme, tmp_path):
    (tmp_path / "billing").mkdir()
    (tmp_path / "returns.md").write_text("# Returns\n\nItems can be returned within 30 days of delivery.\n")
    (tmp_path / "billing" / "vat rules.md").write_text(
        "# VAT\n\nPrices include VAT where the law requires it.\n"
    )
    (tmp_path / "faq.md").write_text(
        "---\ntitle: Questions\nurl: https://help.acme.test/faq-page\n---\n\n"
        "Orders ship within two business days of payment.\n"
    )
    r = cli(
        "knowledge", "add", "-w", acme, str(tmp_path), "--url-base", "https://help.acme.test/a/", "--json"
    )
    assert r.code == 0, r.err
    urls = {d["name"]: d["url"] for d in cli("knowledge", "list", "-w", acme, "--json").json()}
    assert urls == {
        "returns.md": "https://help.acme.test/a/returns",
        "billing/vat rules.md": "https://help.acme.test/a/billing/vat%20rules",
        "faq.md": "https://help.acme.test/faq-page",
    }  # the document's own url: wins
    # Added again without --url-base: unchanged documents keep their URL.
    assert cli("knowledge", "add", "-w", acme, str(tmp_path)).code == 0
    assert cli("knowledge", "list", "-w", acme, "--json").json()[0]["url"] is not None


@pytest.mark.parametrize(
    "front", ["url: javascript:alert(1)", "url: /relative/path", "url: ftp://files.acme.test/x"]
)
def test_a_document_url_that_is_not_http_is_refused(cli, acme, tmp_path, front):
    f = tmp_path / "bad.md"
    f.write_text(f"---\n{front}\n---\n\nSome text that would be published to visitors.\n")
    r = cli("knowledge", "add", "-w", acme, str(f))
    assert r.code == 2 and "is not an http(s) URL" in r.err, r.err
    assert cli("knowledge", "list", "-w", acme, "--json").json() == []  # nothing added
    assert cli("knowledge", "add", "-w", acme, str(f.parent), "--url-base", "javascript:x").code == 2


def test_cite_gives_each_citation_its_title_and_url(app, cli, acme, tmp_path):
    from botctl import workspaces

    (tmp_path / "returns.md").write_text("---\ntitle: Returns and refunds\n---\n\nRefunds take five days.\n")
    cli("knowledge", "add", "-w", acme, str(tmp_path), "--url-base", "https://help.acme.test")
    ws = workspaces.get(app.vault.conn, acme)
    got = cite(
        app.vault.conn,
        ws.id,
        [
            {"document": "returns.md", "section": "Refunds", "excerpt": "x"},
            {"document": "gone.md", "section": "S", "excerpt": "y"},
        ],
    )
    assert [(c["title"], c["url"]) for c in got] == [
        ("Returns and refunds", "https://help.acme.test/returns"),
        ("gone.md", None),
    ]


def test_link_helpers():
    assert document_url("a/b c.html", "https://h.test/x/") == "https://h.test/x/a/b%20c"
    assert front_matter_url("---\nurl: 'https://h.test/p'\n---\nbody") == "https://h.test/p"
    assert front_matter_url("no front matter\nurl: https://h.test") is None


# -- votes ------------------------------------------------------------------------------------------------


class _Ws:
    def __init__(self, id_: str) -> None:
        self.id, self.name = id_, id_


def test_votes_only_about_answers_given(app, cli, acme):
    from botctl import workspaces

    conn = app.vault.conn
    ws = workspaces.get(conn, acme)
    key = feedback.feedback_key(app.vault.audit_key())
    aid = feedback.answer_id(key, ws.id, "Do you ship to Mars?", "Sorry, I don't know.", False)
    with pytest.raises(feedback.FeedbackRefused):  # other words under the same id
        feedback.record(conn, key, ws, aid, "down", "Your shop is a scam", "Sorry, I don't know.", None)
    with pytest.raises(feedback.FeedbackRefused):  # another workspace's answer
        feedback.record(
            conn, key, _Ws("ws_other"), aid, "down", "Do you ship to Mars?", "Sorry, I don't know.", None
        )
    old = feedback.answer_id(key, ws.id, "q", "a", True, now=time.time() - feedback.MAX_AGE_S - 10)
    with pytest.raises(feedback.FeedbackRefused):
        feedback.record(conn, key, ws, old, "up", "q", "a", None)
    with pytest.raises(feedback.FeedbackRefused):
        feedback.record(
            conn,
            key,
            ws,
            aid.replace(".0.", ".1."),
            "down",
            "Do you ship to Mars?",
            "Sorry, I don't know.",
            None,
        )
    feedback.record(conn, key, ws, aid, "up", "Do you ship to Mars?", "Sorry, I don't know.", "u-ada")
    feedback.record(
        conn, key, ws, aid, "down", "Do you ship to Mars?", "Sorry, I don't know.", "u-ada"
    )  # replaces
    assert conn.execute("SELECT vote, visitor, grounded FROM answer_feedback").fetchall() == [
        ("down", "u-ada", 0)
    ]
    rows = cli("knowledge", "feedback", "-w", acme, "--json").json()
    assert [(r["question"], r["down"], r["up"], r["grounded"]) for r in rows] == [
        ("Do you ship to Mars?", 1, 0, False)
    ]
    assert "Do you ship to Mars?" in cli("knowledge", "feedback", "-w", acme).out


def test_feedback_summary_orders_by_down_votes(app, acme):
    from botctl import workspaces

    conn = app.vault.conn
    ws = workspaces.get(conn, acme)
    key = feedback.feedback_key(app.vault.audit_key())
    for i, (q, vote) in enumerate([("A?", "down"), ("b?", "down"), ("B?", "down"), ("C?", "up")]):
        feedback.record(
            conn,
            key,
            ws,
            feedback.answer_id(key, ws.id, q, f"ans{i}", True, now=time.time() - 10 + i),
            vote,
            q,
            f"ans{i}",
            None,
        )
    got = [(r.question, r.down, r.up) for r in feedback.summary(conn, ws)]
    assert got == [("b?", 2, 0), ("A?", 1, 0)]  # "b?" and "B?" are one question; C? only with include_up
    assert len(feedback.summary(conn, ws, include_up=True)) == 3


# -- wording --------------------------------------------------------------------------------------------


def test_every_action_description_visitors_read_speaks_to_them():
    from botctl.connectors import registry
    from botctl.provider.wording import FOR_VISITORS, for_visitor

    names = set()
    for c in registry.all_connectors():
        for a in c.actions:
            name = f"{c.name}.{a.name}"
            names.add(name)
            shown = for_visitor({"name": name, "description": a.description})["description"]
            assert "visitor" not in shown.lower(), (name, shown)
    assert set(FOR_VISITORS) <= names, set(FOR_VISITORS) - names  # no entry for an action that is gone
