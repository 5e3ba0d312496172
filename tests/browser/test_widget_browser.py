"""The widget in a real browser: Debian's Chromium driven by Playwright, against a real daemon and the
example site on two different loopback origins (so CORS and the site's CSP are the browser's own).

Skips cleanly when Playwright or Chromium is missing (`pip install playwright`; `apt-get install chromium`;
never `playwright install`). Screenshots of each state go to test-artifacts/browser/.
"""

from __future__ import annotations

import httpx
import pytest
from browser_harness import HELP_CENTER, Page, skip_without_browser

from botctld.widget_bundle import bundle

skip_without_browser()
pytestmark = pytest.mark.slow


def test_widget_loads_and_opens_with_the_keyboard(page):
    page.goto()
    page.shot("01-closed")
    launcher = page.w(".launcher")
    assert launcher.get_attribute("aria-expanded") == "false"
    assert launcher.get_attribute("aria-label") == "Chat with Juniper & Pine Support"
    assert page.w(".panel").is_hidden()
    # Tab from the top of the page reaches the launcher (the widget is last in the tab order).
    page.page.locator("body").focus()
    for _ in range(30):
        page.page.keyboard.press("Tab")
        if (page.active() or {}).get("cls") == "launcher":
            break
    else:
        raise AssertionError("Tab never reached the launcher")
    page.page.keyboard.press("Enter")
    dialog = page.page.get_by_role("dialog", name="Juniper & Pine Support")
    dialog.wait_for()
    assert launcher.get_attribute("aria-expanded") == "true"
    assert page.active()["id"] == "botctl-q"  # focus moved into the panel, on the question box
    log = page.page.get_by_role("log", name="Conversation")
    assert log.get_attribute("aria-live") == "polite"
    assert "Hi! How can we help?" in log.inner_text()
    assert page.page.get_by_role("textbox", name="Ask a question").is_visible()
    assert page.w(".who").inner_text() == "Not signed in"
    page.shot("02-open")
    page.page.keyboard.press("Escape")
    page.w(".panel").wait_for(state="hidden")
    assert page.active()["cls"] == "launcher"  # focus back where it was
    assert launcher.get_attribute("aria-expanded") == "false"
    # The constructed stylesheet applies under style-src 'self', themed by the site's custom property.
    bg = launcher.evaluate("el => getComputedStyle(el).backgroundColor")
    assert bg == "rgb(31, 95, 74)", bg
    page.assert_clean()


def test_anonymous_question_gets_a_cited_answer(page, stack):
    if not stack.knowledge:
        pytest.skip("`botctl knowledge` is not in this tree yet")
    page.goto()
    page.open()
    answer = page.ask("How long do refunds take?")
    text = answer.inner_text()
    assert answer.get_attribute("data-grounded") == "true"
    assert "business days" in text, text
    sources = answer.locator(".sources li")
    assert sources.count() >= 1
    # The article's title, linked to the help center's page for it (`knowledge add --url-base`), not a file name.
    assert sources.first.inner_text() == "Returns and refunds — Refunds"
    link = sources.first.locator("a")
    assert link.inner_text() == "Returns and refunds"
    assert link.get_attribute("href") == HELP_CENTER + "/returns"
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("target") == "_blank"
    assert ".md" not in answer.inner_text()
    page.shot("03-cited-answer")
    # Unknown: "I don't know", and what the bot can do instead (customer-specific: sign in first).
    unknown = page.ask("Can I pay with seashells at your Mars store?")
    assert unknown.get_attribute("data-grounded") == "false"
    assert "don't know" in unknown.inner_text()
    chips = unknown.locator(".chip")
    assert chips.count() >= 1
    assert "Create ticket" in chips.first.inner_text() and "Sign in to use this" in chips.first.inner_text()
    page.shot("04-dont-know")
    # Markup typed by the visitor stays text.
    page.ask("<img src=x id=pwned> where is <b>my</b> parcel?")
    assert page.w(".msg.me").last.inner_text() == "<img src=x id=pwned> where is <b>my</b> parcel?"
    assert (
        page.page.evaluate("document.getElementById('botctl-widget').shadowRoot.querySelector('#pwned, b')")
        is None
    )
    page.assert_clean()


def test_anonymous_customer_action_asks_to_sign_in(page):
    page.goto()
    page.open()
    page.w(".tools").click()
    orders = page.w(".act[data-action='shopify.list_my_orders']")
    assert "Sign in to use this" in orders.inner_text()
    page.shot("05-actions-anonymous")
    orders.click()
    prompt = page.w(".msg[data-code=sign_in_required]")
    prompt.wait_for()
    assert "Sign in to use this" in prompt.inner_text()
    assert prompt.locator("a").get_attribute("href") == page.stack.site + "/#sign-in"
    assert not any("/actions/shopify.list_my_orders" in u for u in page.requests)  # nothing was run
    page.shot("06-sign-in-prompt")
    page.assert_clean()


def test_signed_in_visitor_lists_own_orders_and_opens_a_ticket(page, stack):
    seed = stack.sandbox.seed()
    page.goto()
    page.page.click("#login-ada")  # the site's fake sign-in; its backend mints the token
    page.wait_state("ready", identity="signed-in")
    page.open()
    assert page.w(".who").inner_text() == "Signed in as Ada Lovelace"
    page.run_from_tray("shopify.list_my_orders")
    result = page.w(".result-msg[data-action='shopify.list_my_orders']")
    result.wait_for()
    text = result.inner_text()
    assert text.lower().startswith("your orders (5)"), text
    for name in seed["shopify"]["ada@example.com"]["order_names"]:
        assert name in text
    for name in seed["shopify"]["grace@example.com"]["order_names"]:
        assert name not in text
    page.shot("07-orders")
    # A ticket: the form comes from the action's JSON Schema; the browser checks it before sending.
    page.run_from_tray("zendesk.create_ticket")
    form = page.w("form[data-action='zendesk.create_ticket']")
    form.wait_for()
    assert page.active()["tag"] == "input"  # focus on the first field
    before = len(page.requests)
    form.locator("button[type=submit]").click()
    subject = form.locator("input[name=subject]")
    assert subject.get_attribute("aria-invalid") == "true"
    assert "required" in form.inner_text()
    assert page.active()["tag"] == "input"
    assert not any("/actions/zendesk.create_ticket" in u for u in page.requests[before:])
    page.shot("08-ticket-form-invalid")
    subject.fill("My parcel is late <img src=x id=pwned>")  # comes back from the vendor: must stay text
    form.locator("textarea[name=description]").fill("Order #1007 has not arrived yet.")
    form.locator("select[name=priority]").select_option("high")
    page.shot("09-ticket-form")
    form.locator("button[type=submit]").click()
    done = page.w(".result-msg[data-action='zendesk.create_ticket']")
    done.wait_for()
    assert "Done" in done.inner_text() and "My parcel is late" in done.inner_text()
    assert form.count() == 0
    page.shot("10-ticket-created")
    page.run_from_tray("zendesk.list_my_tickets")
    tickets = page.w(".result-msg[data-action='zendesk.list_my_tickets']")
    tickets.wait_for()
    assert "My parcel is late <img src=x id=pwned>" in tickets.inner_text()
    assert (
        page.page.evaluate(
            "document.getElementById('botctl-widget').shadowRoot.querySelector('img:not(.logo)')"
        )
        is None
    )
    # Signing out of the site: the widget forgets the token.
    page.page.click("#logout")
    page.wait_state("ready", identity="anonymous")
    page.open()
    assert page.w(".who").inner_text() == "Not signed in"
    page.assert_clean()


def test_identify_queue_before_load_scopes_to_that_visitor(page, stack):
    """Push mode: the page fetches the token itself and calls botctl.identify (queued if early)."""
    seed = stack.sandbox.seed()
    page.goto("/?mode=push")
    page.page.click("#login-grace")
    page.wait_state("ready", identity="signed-in")
    page.open()
    assert page.w(".who").inner_text() == "Signed in as Grace Hopper"
    page.run_from_tray("shopify.list_my_orders")
    result = page.w(".result-msg[data-action='shopify.list_my_orders']")
    result.wait_for()
    text = result.inner_text()
    assert all(n in text for n in seed["shopify"]["grace@example.com"]["order_names"])
    assert not any(n in text for n in seed["shopify"]["ada@example.com"]["order_names"])
    page.assert_clean()


def test_refusals_are_explained_in_plain_language(page, stack):
    seed = stack.sandbox.seed()
    page.goto()
    page.page.click("#login-ada")
    page.wait_state("ready", identity="signed-in")
    page.open()
    page.run_from_tray("shopify.get_my_order")
    form = page.w("form[data-action='shopify.get_my_order']")
    field = form.locator("input[name=order_id]")
    assert page.page.get_by_role("textbox", name="Order ID (required)").count() == 1  # labelled input
    field.fill("order one")  # the schema's pattern, checked in the browser: nothing sent
    form.locator("button[type=submit]").click()
    assert field.get_attribute("aria-invalid") == "true" and "doesn't look right" in form.inner_text()
    assert not any("/actions/shopify.get_my_order" in u for u in page.requests)
    field.fill(seed["shopify"]["grace@example.com"]["orders"][0])  # Grace's order, asked by Ada
    assert field.get_attribute("aria-invalid") == "false"  # re-checked as it is fixed
    form.locator("button[type=submit]").click()
    refused = page.w(".msg.err[data-code=not_found]")  # someone else's order looks like no order
    refused.wait_for()
    assert "We couldn't find that." in refused.inner_text()
    assert "Reference: req_" in refused.inner_text()
    assert "#1003" not in page.w(".log").inner_text()
    page.shot("11-forbidden")
    # A token the daemon refuses: the widget asks the site's endpoint for a fresh one and retries once.
    page.page.evaluate("window.botctl.identify('not-a.valid.token')")
    page.run_from_tray("zendesk.list_my_tickets")
    page.w(".result-msg[data-action='zendesk.list_my_tickets']").wait_for()
    assert page.w(".who").inner_text() == "Signed in as Ada Lovelace"
    page.assert_clean(refusals=2)


def test_refused_token_without_a_refresher_asks_to_sign_in_again(page):
    page.goto("/?mode=push")  # no identity endpoint: the page hands tokens over itself
    page.page.evaluate("window.botctl.identify('not-a.valid.token')")
    page.open()
    assert page.w(".who").inner_text() == "Signed in as you"
    page.run_from_tray("shopify.list_my_orders")
    refused = page.w(".msg.err[data-code=invalid_identity]")
    refused.wait_for()
    assert "Your session expired; please sign in again." in refused.inner_text()
    assert refused.locator("a", has_text="Sign in").count() == 1
    assert page.w(".who").inner_text() == "Not signed in"  # forgotten, never used again
    page.page.evaluate("window.botctl.logout()")
    page.assert_clean(refusals=1)


def test_other_origin_cannot_use_the_workspace(page, stack):
    page.goto(origin=stack.foreign, state="error")
    page.open()
    err = page.w(".msg.err")
    err.wait_for()
    assert "isn't available" in err.inner_text()
    assert page.w("#botctl-q").is_disabled()
    assert page.w(".who").inner_text() == "Unavailable"
    page.shot("12-foreign-origin")
    # The browser got no CORS grant, so the page could read nothing; the API says why.
    assert f"{stack.edge}/v1/workspaces/acme/widget-config" in page.failed
    assert not any("/v1/workspaces/acme/" in u for _, u in page.responses)
    r = httpx.get(f"{stack.edge}/v1/workspaces/acme/widget-config", headers={"Origin": stack.foreign})
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in r.headers
    assert any("CORS" in c for c in page.console)  # the browser's own refusal
    assert page.csp == []


def test_strict_csp_is_enforced_and_the_probe_works(page, stack):
    """The site's CSP is the strict one, and a violation would have been caught (the probe is live)."""
    resp = httpx.get(stack.site + "/")
    policy = resp.headers["content-security-policy"]
    assert "style-src 'self'" in policy and f"script-src 'self' {stack.edge}" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "require-trusted-types-for 'script'" in policy
    page.goto()
    page.open()
    assert page.csp == []
    page.page.evaluate(
        "document.body.setAttribute('style', 'outline: 1px solid red')"
    )  # what the widget never does
    page.page.wait_for_timeout(200)
    assert any(v["directive"].startswith("style-src") for v in page.csp), page.csp


def test_phone_viewport_full_screen_panel(browser, stack):
    p = Page(browser, stack, viewport={"width": 390, "height": 780}, device_scale_factor=2, has_touch=True)
    try:
        p.goto()
        p.shot("13-phone-closed")
        p.open()
        box = p.w(".panel").bounding_box()
        assert [round(box[k]) for k in ("x", "y", "width", "height")] == [0, 0, 390, 780], box
        assert p.w(".launcher").is_hidden()  # the panel's own close button takes over
        # Full screen, the panel keeps Tab inside it: from the first control back to the last.
        p.w(".person").focus()  # "talk to a person", the header's first control
        p.page.keyboard.press("Shift+Tab")
        assert "send" in p.active()["cls"]
        p.page.keyboard.press("Tab")
        assert "person" in p.active()["cls"]
        p.w(".tools").click()
        p.shot("14-phone-open")
        p.w(".close").click()
        p.w(".panel").wait_for(state="hidden")
        assert p.w(".launcher").is_visible()
        p.assert_clean()
    finally:
        p.close()


def test_widget_script_headers(stack):
    r = httpx.get(stack.edge + "/widget.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/javascript")
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"
    assert r.content == bundle()
