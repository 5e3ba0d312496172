"""The public Python API, used only through `botctl.Botctl` (what docs/python-api.md documents)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import botctl
from botctl import ActionError, Botctl, BotctlError


def test_a_home_from_nothing_to_an_audited_action(isolated, sandbox):
    creds = sandbox.credentials()
    with Botctl(isolated, create=True) as bc:
        ws = bc.create_workspace("acme", plan="pro", origins=["https://shop.acme.test"])
        assert ws["name"] == "acme" and ws["origins"] == ["https://shop.acme.test"]
        assert [w["name"] for w in bc.workspaces()] == ["acme"]
        conn = bc.connect("acme", "stripe", api_key=creds["stripe"]["api_key"], sandbox=sandbox.url)
        assert conn["connector"] == "stripe" and conn["status"] == "active"
        assert creds["stripe"]["api_key"] not in repr(bc.connections("acme"))
        statuses = {a["name"]: a["status"] for a in bc.actions("acme")}
        assert (
            statuses["stripe.list_my_invoices"] == "available"
            and statuses["zendesk.create_ticket"] == "not_connected"
        )

        result = bc.run_action("acme", "stripe.list_my_invoices", visitor_email="ada@example.com")
        assert result["ok"] and result["action"] == "stripe.list_my_invoices"
        with pytest.raises(ActionError) as refused:
            bc.run_action("acme", "stripe.list_my_invoices")  # no visitor: customer actions need one
        assert refused.value.code == "identity_required"

        runs = bc.audit(event="action.run")
        assert [(r["action"], r["outcome"]) for r in runs] == [
            ("stripe.list_my_invoices", "ok"),
            ("stripe.list_my_invoices", "denied"),
        ]
        assert bc.audit_record(runs[0]["seq"])["request_id"] == result["request_id"]
        verdict = bc.verify_audit()
        assert verdict.ok and verdict.records >= 4
        assert bc.delete_workspace("acme") is True and bc.workspaces() == []


def test_errors_carry_stable_codes(isolated):
    with pytest.raises(BotctlError) as e:
        Botctl(isolated)  # no home and no create=True
    assert e.value.code == "not_initialised"
    with Botctl(isolated, create=True) as bc:
        with pytest.raises(BotctlError) as e:
            bc.create_workspace("Bad Name")
        assert e.value.code == "invalid_input"
        with pytest.raises(BotctlError) as e:
            bc.workspace("nope")
        assert e.value.code == "unknown_workspace"
        bc.create_workspace("acme")
        with pytest.raises(BotctlError) as e:
            bc.connect("acme", "zendesk", api_key="k")  # an OAuth vendor takes an access token
        assert e.value.code == "invalid_input"


def test_the_api_is_documented_and_costs_the_cli_nothing():
    assert set(botctl.__all__) >= {"Botctl", "ActionError", "BotctlError", "Visitor"}
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "python-api.md").read_text()
    public = [m for m in dir(Botctl) if not m.startswith("_")]
    assert public and not [m for m in public if f"`{m}" not in page], "document every public method"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, botctl; print('botctl.api' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "False"  # `import botctl` (every CLI start) does not import the API module
