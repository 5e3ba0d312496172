"""HubSpot against the sandbox: the contact is always the token's email."""

from __future__ import annotations

import pytest

from botctl.connectors.base import ActionError
from botctl.secret import Secret

from .conftest import GRACE, LINUS


def test_validate(h):
    assert str(h.seed["_meta"]["accounts"]["hubspot"]["portal_id"]) in h.validate("hubspot")
    with pytest.raises(ActionError) as e:
        h.validate("hubspot", credential={"access_token": Secret("pat-na1-wrong")})
    assert e.value.code == "needs_reauth"


def test_get_my_contact(h):
    out = h.ok("hubspot.get_my_contact")
    assert out["found"] is True and out["id"] == h.seed["hubspot"]["ada@example.com"]["contact_id"]
    assert out["email"] == "ada@example.com"
    assert (
        h.ok("hubspot.get_my_contact", visitor=GRACE)["id"]
        == h.seed["hubspot"]["grace@example.com"]["contact_id"]
    )
    assert h.ok("hubspot.get_my_contact", visitor=LINUS) == {"found": False}


def test_upsert_creates_then_updates(h):
    created = h.ok("hubspot.upsert_my_contact", {"company": "Linux"}, visitor=LINUS)
    assert created["created"] is True and created["email"] == "linus@example.com"
    assert (created["firstname"], created["lastname"]) == ("Linus", "Torvalds")
    updated = h.ok("hubspot.upsert_my_contact", {"phone": "+1 555 0100"}, visitor=LINUS)
    assert updated["created"] is False and updated["id"] == created["id"]
    assert updated["phone"] == "+1 555 0100" and updated["company"] == "Linux"


def test_add_note(h):
    out = h.ok("hubspot.add_note", {"body": "Asked about the invoice"})
    assert out["id"] and out["contact_id"] == h.seed["hubspot"]["ada@example.com"]["contact_id"]
    assert h.fail("hubspot.add_note", {"body": "x"}, visitor=LINUS).code == "not_found"


def test_limited_token(h):
    limited = h.credential("hubspot", limited=True)
    assert h.ok("hubspot.get_my_contact", credential=limited)["found"] is True
    assert h.fail("hubspot.add_note", {"body": "x"}, credential=limited).code == "missing_scope"


def test_read_survives_two_500s_and_honours_429(h):
    h.sb.fault("hubspot", "500", count=2)
    run = h.run("hubspot.get_my_contact")
    assert run.error is None and len(run.waits) == 2
    h.sb.fault("hubspot", "429", count=1, retry_after=2)
    run = h.run("hubspot.get_my_contact")
    assert run.error is None and len(run.waits) == 1 and run.waits[0] >= 2


def test_upsert_updates_adas_contact_only(h):
    out = h.ok("hubspot.upsert_my_contact", {"phone": "+44 20 7946 0000", "jobtitle": "Analyst"})
    assert out["created"] is False and out["id"] == h.seed["hubspot"]["ada@example.com"]["contact_id"]
    assert out["email"] == "ada@example.com" and out["phone"] == "+44 20 7946 0000"
    assert h.ok("hubspot.get_my_contact", visitor=GRACE)["phone"] != "+44 20 7946 0000"
    assert h.ok("hubspot.upsert_my_contact")["created"] is False  # nothing to change: read only
