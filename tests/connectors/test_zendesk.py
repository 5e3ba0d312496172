"""Zendesk against the sandbox: identity binding, ownership, cursor pagination, safe retries."""

from __future__ import annotations

from botctl.secret import Secret

from .conftest import GRACE, LINUS


def ada_ids(h):
    return h.seed["zendesk"]["ada@example.com"]["tickets"]


def grace_ids(h):
    return h.seed["zendesk"]["grace@example.com"]["tickets"]


def test_validate(h):
    label = h.validate("zendesk")
    assert "support@acme.example" in label
    err = _raises(lambda: h.validate("zendesk", credential={"access_token": Secret("zd-wrong")}))
    assert err.code == "needs_reauth"


def test_list_my_tickets_is_only_adas(h):
    out = h.ok("zendesk.list_my_tickets")
    assert sorted(t["id"] for t in out["tickets"]) == sorted(ada_ids(h))
    assert out["truncated"] is False
    assert set(out["tickets"][0]) == {"id", "subject", "status", "priority", "created_at", "updated_at"}
    assert h.ok("zendesk.list_my_tickets", visitor=LINUS) == {"tickets": [], "truncated": False}


def test_list_follows_cursor_pagination(h):
    h.sb.configure(max_page_size=2)
    run = h.run("zendesk.list_my_tickets")
    assert run.error is None
    assert sorted(t["id"] for t in run.result["tickets"]) == sorted(ada_ids(h))
    assert h.route_requests("zendesk", "GET /api/v2/users/{user_id}/tickets/requested.json") == 3
    assert sorted(run.audit["object_ids"]) == sorted(str(i) for i in ada_ids(h))


def test_get_my_ticket_shows_public_conversation(h):
    tid = ada_ids(h)[0]
    out = h.ok("zendesk.get_my_ticket", {"ticket_id": tid})
    assert out["id"] == tid
    assert out["comments"] and out["comments"][0]["from"] in ("you", "support")


def test_someone_elses_ticket_is_forbidden_and_not_shown(h):
    tid = grace_ids(h)[0]
    err = h.fail("zendesk.get_my_ticket", {"ticket_id": tid})
    assert err.code == "forbidden"
    assert "Grace" not in err.message and str(tid) not in err.message
    before = h.sb.stats()
    err = h.fail("zendesk.add_comment", {"ticket_id": tid, "body": "hi"})
    assert err.code == "forbidden"
    # Ownership is checked before any write: no PUT reached the vendor.
    assert h.route_requests("zendesk", "PUT /api/v2/tickets/{ticket_id}.json") == 0
    assert before  # stats were readable
    # Grace herself may read it.
    assert h.ok("zendesk.get_my_ticket", {"ticket_id": tid}, visitor=GRACE)["id"] == tid


def test_unknown_ticket_is_not_found(h):
    assert h.fail("zendesk.get_my_ticket", {"ticket_id": 99999}).code == "not_found"


def test_add_comment(h):
    tid = ada_ids(h)[0]
    out = h.ok("zendesk.add_comment", {"ticket_id": tid, "body": "Any news?"})
    assert out["id"] == tid
    comments = h.ok("zendesk.get_my_ticket", {"ticket_id": tid})["comments"]
    assert any(c["body"] == "Any news?" and c["from"] == "you" for c in comments)


def test_add_comment_to_closed_ticket(h):
    closed = ada_ids(h)[4]  # the seed closes Ada's fifth ticket
    assert h.fail("zendesk.add_comment", {"ticket_id": closed, "body": "x"}).code == "invalid_params"


def test_create_ticket_for_the_visitor(h):
    wire = []
    out = h.ok("zendesk.create_ticket", {"subject": "Broken", "description": "It broke"}, wire=wire)
    assert out["subject"] == "Broken"
    listed = h.ok("zendesk.list_my_tickets")["tickets"]
    assert out["id"] in [t["id"] for t in listed]
    posts = [hdrs for (m, p, hdrs) in wire if m == "POST"]
    assert len(posts) == 1 and posts[0]["idempotency-key"].startswith("botctl-")


def test_create_ticket_retries_only_with_its_idempotency_key(h):
    before = len(h.ok("zendesk.list_my_tickets")["tickets"])
    h.sb.fault("zendesk", "500", count=1, method="POST")
    wire = []
    run = h.run("zendesk.create_ticket", {"subject": "Retry me", "description": "x"}, wire=wire)
    assert run.error is None
    keys = [hdrs["idempotency-key"] for (m, p, hdrs) in wire if m == "POST"]
    assert len(keys) == 2 and keys[0] == keys[1]
    after = h.ok("zendesk.list_my_tickets")["tickets"]
    assert len(after) == before + 1


def test_create_ticket_not_duplicated_by_a_reset(h):
    before = len(h.ok("zendesk.list_my_tickets")["tickets"])
    h.sb.fault("zendesk", "reset", count=3, method="POST")
    err = h.fail("zendesk.create_ticket", {"subject": "Reset", "description": "x"})
    assert err.code == "outcome_unknown"  # sent three times (same key), never confirmed
    assert len(h.ok("zendesk.list_my_tickets")["tickets"]) == before


def test_read_survives_two_500s(h):
    h.sb.fault("zendesk", "500", count=2, path="/tickets/requested.json")
    run = h.run("zendesk.list_my_tickets")
    assert run.error is None and len(run.result["tickets"]) == len(ada_ids(h))
    assert len(run.waits) == 2 and run.statuses.count(500) == 2


def test_429_retry_after_is_honoured(h):
    h.sb.fault("zendesk", "429", count=1, retry_after=7)
    run = h.run("zendesk.list_my_tickets")
    assert run.error is None
    assert len(run.waits) == 1 and 7 <= run.waits[0] <= 8


def test_limited_scope_token(h):
    err = h.fail(
        "zendesk.create_ticket",
        {"subject": "s", "description": "d"},
        credential=h.credential("zendesk", limited=True),
    )
    assert err.code == "missing_scope"
    assert "write" in err.message


def _raises(fn):
    from botctl.connectors.base import ActionError

    try:
        fn()
    except ActionError as e:
        return e
    raise AssertionError("no ActionError")
