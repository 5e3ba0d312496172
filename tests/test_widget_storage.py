"""The widget's rows on both backends (issue #20): SQLite files and PostgreSQL (its own fresh database,
dropped after). Widget settings set and cleared, votes stored once per answer (a second replaces it) and
summarised, documents' help-center URLs and the titles sources show."""

import contextlib

import pytest

from botctl import feedback, widget_settings
from botctl.knowledge.links import cite


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, home, monkeypatch):
    from botctl.session import Session

    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            monkeypatch.setenv("BOTCTL_DATABASE_URL", request.getfixturevalue("pg_url"))
        a = Session(home)
        stack.callback(a.close)
        assert type(a.vault.conn).__module__.startswith(
            "botctl.postgres" if request.param == "postgresql" else "sqlite3"
        )
        yield a


def _ws(app, name="acme"):
    from botctl import workspaces

    return workspaces.find(app.vault.conn, name) or workspaces.create(app, name)


def test_settings_set_and_cleared(app):
    ws, other = _ws(app), _ws(app, "other")
    widget_settings.update(app, ws, {"accent": "#ABC", "support_contact": "Email us"})
    assert widget_settings.update(app, ws, {"accent": None, "logo": "https://cdn.acme.test/l.svg"}) == {
        "logo": "https://cdn.acme.test/l.svg",
        "support_contact": "Email us",
    }
    assert widget_settings.get(app.vault.conn, ws) == {
        "logo": "https://cdn.acme.test/l.svg",
        "support_contact": "Email us",
    }
    assert widget_settings.get(app.vault.conn, other) == {}  # per workspace


def test_votes_once_per_answer_and_summarised(app):
    ws, other = _ws(app), _ws(app, "other")
    conn = app.vault.conn
    key = feedback.feedback_key(app.vault.audit_key())
    aid = feedback.answer_id(key, ws.id, "Mars?", "I don't know.", False)
    feedback.record(conn, key, ws, aid, "up", "Mars?", "I don't know.", None)
    feedback.record(conn, key, ws, aid, "down", "Mars?", "I don't know.", "u-ada")
    with pytest.raises(feedback.FeedbackRefused):
        feedback.record(conn, key, other, aid, "down", "Mars?", "I don't know.", None)
    assert [(q.question, q.down, q.up, q.grounded) for q in feedback.summary(conn, ws)] == [
        ("Mars?", 1, 0, False)
    ]
    assert feedback.summary(conn, other) == []


def test_document_urls_and_cited_titles(app, tmp_path):
    from botctl import knowledge

    ws = _ws(app)
    (tmp_path / "returns.md").write_text(
        "---\ntitle: Returns and refunds\n---\n\nRefunds take five business days.\n"
    )
    (tmp_path / "faq.md").write_text(
        "---\nurl: https://help.acme.test/faq\n---\n\n# FAQ\n\nWe ship worldwide.\n"
    )
    knowledge.add(app, ws, [str(tmp_path)], url_base="https://help.acme.test/a")
    got = cite(
        app.vault.conn,
        ws.id,
        [
            {"document": "returns.md", "section": "Returns and refunds", "excerpt": ""},
            {"document": "faq.md", "section": "FAQ", "excerpt": ""},
        ],
    )
    assert [(c["title"], c["url"]) for c in got] == [
        ("Returns and refunds", "https://help.acme.test/a/returns"),
        ("FAQ", "https://help.acme.test/faq"),
    ]
