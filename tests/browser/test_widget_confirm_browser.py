"""The visitor confirms a change an MCP bot asked for (issue #18), in the real widget in Chromium: the bot's
tools/call stops at confirmation_required; botctl.confirm(id) shows the summary the daemon stored (not the
bot's words) with Confirm / Cancel; the visitor answers by keyboard or by click; only then does the vendor
see the write. Uses the browser suite's stack (tests/browser/conftest.py: daemon + example site on its own origin)."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from browser_harness import ARTIFACTS, Page, skip_without_browser

skip_without_browser()
pytestmark = pytest.mark.slow


def _ada_token(stack, use: str | None = None) -> str:
    """Ada's token as her site signs it: the widget's by default; `use="mcp"` the one it gives its bot."""
    secret = json.loads(stack.secret_file.read_text())
    now = int(time.time())
    claims = {
        "sub": "u-ada",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "aud": "acme",
        "iat": now,
        "exp": now + 300,
    }
    if use:
        claims["botctl_use"] = use
    return jwt.encode(claims, secret["secret"], algorithm="HS256", headers={"kid": secret["kid"]})


def _bot_asks(stack, subject: str) -> dict:
    """The bot, over MCP with the token Ada's site signs for it: create a ticket → confirmation_required."""
    r = httpx.post(
        f"{stack.edge}/v1/workspaces/acme/mcp",
        timeout=30,
        headers={"Authorization": f"Bearer {_ada_token(stack, 'mcp')}"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "zendesk__create_ticket",
                "arguments": {"subject": subject, "description": "Asked by the bot."},
            },
        },
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]["structuredContent"]["confirmation_required"]


def _tickets_with(stack, subject: str) -> int:
    r = httpx.post(
        f"{stack.edge}/v1/workspaces/acme/actions/zendesk.list_my_tickets",
        json={"params": {}},
        headers={"Authorization": f"Bearer {_ada_token(stack)}"},
        timeout=30,
    )
    return r.text.count(subject)


@pytest.fixture
def ada_page(browser, stack):
    p = Page(browser, stack)
    try:
        p.goto()
        p.page.click("#login-ada")
        p.wait_state("ready", identity="signed-in")
        yield p
    finally:
        p.close()


def _show(page: Page, cid: str):
    page.page.evaluate("id => { window.__answer = window.botctl.confirm(id); }", cid)
    card = page.w(f".confirm[data-confirmation='{cid}']")
    card.wait_for()
    return card


def test_confirm_by_keyboard(ada_page, stack):
    page = ada_page
    held = _bot_asks(stack, "Keyboard confirmed ticket")
    assert _tickets_with(stack, "Keyboard confirmed ticket") == 0  # not on the bot's word
    card = _show(page, held["confirmation_id"])
    text = card.inner_text()
    assert (
        "please confirm" in text.lower()
        and "Keyboard confirmed ticket" in text
        and "Asked by the bot." in text
    )
    assert page.page.get_by_role("group", name="Please confirm").count() >= 1
    assert page.active()["tag"] == "button" and page.active()["cls"] == "btn primary"  # focus on Confirm
    page.shot("20-confirmation")
    page.page.keyboard.press("Enter")
    page.w(f".confirm[data-confirmation='{held['confirmation_id']}'][data-status=confirmed]").wait_for()
    assert page.page.evaluate("window.__answer.then(a => a.status)") == "confirmed"
    assert "Done." in card.inner_text()
    assert _tickets_with(stack, "Keyboard confirmed ticket") == 1
    page.shot("21-confirmed")
    page.assert_clean()


def test_confirm_and_cancel_by_click(ada_page, stack):
    page = ada_page
    held = _bot_asks(stack, "Clicked confirmed ticket")
    card = _show(page, held["confirmation_id"])
    card.get_by_role("button", name="Confirm").click()
    page.w(f".confirm[data-confirmation='{held['confirmation_id']}'][data-status=confirmed]").wait_for()
    assert _tickets_with(stack, "Clicked confirmed ticket") == 1
    # Cancel: nothing is sent, and the bot's id is spent.
    held = _bot_asks(stack, "Cancelled ticket")
    card = _show(page, held["confirmation_id"])
    card.get_by_role("button", name="Cancel").click()
    page.w(f".confirm[data-confirmation='{held['confirmation_id']}'][data-status=cancelled]").wait_for()
    assert "nothing was changed" in card.inner_text()
    assert page.page.evaluate("window.__answer.then(a => a.status)") == "cancelled"
    assert _tickets_with(stack, "Cancelled ticket") == 0
    page.shot("22-cancelled")
    # Shown again after it was answered: said so, and no buttons to press.
    buttons = page.w(".confirm button").count()
    page.page.evaluate("id => { window.__again = window.botctl.confirm(id); }", held["confirmation_id"])
    page.w(".msg.err[data-code=confirmation_used]").wait_for()
    assert page.w(".confirm button").count() == buttons == 0
    page.assert_clean()


def test_another_visitor_sees_nothing(browser, stack):
    held = _bot_asks(stack, "Not Grace's ticket")
    p = Page(browser, stack)
    try:
        p.goto()
        p.page.click("#login-grace")
        p.wait_state("ready", identity="signed-in")
        p.page.evaluate("id => { window.__answer = window.botctl.confirm(id); }", held["confirmation_id"])
        p.w(".msg.err[data-code=not_found]").wait_for()
        assert p.w(".confirm").count() == 0
        assert "Not Grace's ticket" not in p.w(".log").inner_text()
        assert p.page.evaluate("window.__answer.then(a => a.code)") == "not_found"
        p.shot("23-confirmation-not-yours")
        p.assert_clean(refusals=1)
    finally:
        p.close()
    assert ARTIFACTS.exists()


def test_confirm_without_an_id_shows_what_waits(browser, stack):
    """No id passed by the site: botctl.confirm() shows Ada every change the bot asked for, each card once."""
    held = _bot_asks(stack, "Waiting for Ada")
    p = Page(browser, stack)
    try:
        p.goto()
        p.page.click("#login-ada")
        p.wait_state("ready", identity="signed-in")
        p.open()
        assert p.w(".confirm").count() == 0  # opening the panel asks nothing
        p.page.evaluate("() => window.botctl.confirm()")
        card = p.w(f".confirm[data-confirmation='{held['confirmation_id']}']")
        card.wait_for()
        assert "Waiting for Ada" in card.inner_text()
        p.page.evaluate("() => window.botctl.confirm()")  # asked again: the same card, not a second one
        p.page.evaluate("id => window.botctl.confirm(id)", held["confirmation_id"])
        assert p.w(f".confirm[data-confirmation='{held['confirmation_id']}']").count() == 1
        card.get_by_role("button", name="Confirm").click()
        p.w(f".confirm[data-confirmation='{held['confirmation_id']}'][data-status=confirmed]").wait_for()
        assert _tickets_with(stack, "Waiting for Ada") == 1
        p.shot("24-all-waiting")
        p.assert_clean()
    finally:
        p.close()
