"""The widget as a visitor meets it (issue #20), in Chromium against a real daemon and the example site:
the conversation across page loads and sign-in (never the token in storage), answers' Markdown with an
XSS attempt left inert, sources by title and help-center link, the workspace's look (accent, logo, dark
mode) and French, thumbs up/down the operator can list, and "talk to a person" (a help-desk ticket with
the conversation, or the operator's contact text). Screenshots in test-artifacts/browser/visitor-*.png.
"""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from browser_harness import SUPPORT_CONTACT, Page, botctl, skip_without_browser

skip_without_browser()
pytestmark = pytest.mark.slow

REFUNDS = "How long do refunds take?"
UNKNOWN = "Can I pay with seashells at your Mars store?"


def storage_dump(page: Page) -> str:
    """Everything the page's origin keeps in the browser: both storages and its readable cookies."""
    return page.page.evaluate("""() => JSON.stringify({
        session: Object.fromEntries(Object.keys(sessionStorage).map(k => [k, sessionStorage.getItem(k)])),
        local: Object.fromEntries(Object.keys(localStorage).map(k => [k, localStorage.getItem(k)])),
        cookies: document.cookie})""")


def site_token(page: Page) -> str | None:
    """The identity token the site's backend hands the widget now (what must never be stored)."""
    return page.page.evaluate(
        "fetch('/botctl-token', {credentials: 'same-origin'}).then(r => r.json()).then(b => b.token)"
    )


def test_conversation_survives_reloads_and_sign_in_without_storing_the_token(page, stack):
    seed = stack.sandbox.seed()
    page.goto()
    page.open()
    answer = page.ask(REFUNDS)
    said = answer.locator("p").first.inner_text()
    # A page load (a link followed): the conversation is there again, without asking the daemon again.
    before = len(page.requests)
    page.page.reload()
    page.wait_state("ready")
    page.open()
    assert page.w(".msg.me").first.inner_text() == REFUNDS
    assert page.w(".msg.answer").count() == 1 and said in page.w(".msg.answer").first.inner_text()
    assert not any(u.endswith("/chat") for u in page.requests[before:])
    page.shot("visitor-01-after-reload")
    # Signing in on the site reloads the page: the conversation carries on, now signed in.
    page.page.click("#login-ada")
    page.wait_state("ready", identity="signed-in")
    page.open()
    assert (
        page.w(".msg.me").first.inner_text() == REFUNDS and said in page.w(".msg.answer").first.inner_text()
    )
    page.run_from_tray("shopify.list_my_orders")
    page.w(".result-msg[data-action='shopify.list_my_orders']").wait_for()
    page.page.reload()
    page.wait_state("ready", identity="signed-in")
    page.open()
    page.w(".result-msg[data-action='shopify.list_my_orders']").wait_for()  # still hers, still signed in
    page.shot("visitor-02-signed-in-after-reload")
    token = site_token(page)
    assert token and token.count(".") == 2
    kept = storage_dump(page)
    assert REFUNDS in kept  # the conversation is kept...
    assert token not in kept and token.split(".")[1] not in kept and "eyJ" not in kept  # ...the token never
    # Signing out: her orders go from the screen and from storage; the questions and answers stay.
    page.page.click("#logout")
    page.wait_state("ready", identity="anonymous")
    page.open()
    page.w(".msg.answer").first.wait_for()
    assert page.w(".msg.me").first.inner_text() == REFUNDS
    assert page.w(".result-msg").count() == 0
    kept = storage_dump(page)
    order_names = seed["shopify"]["ada@example.com"]["order_names"]
    assert not any(n in kept for n in order_names), kept
    assert not any(n in page.w(".log").inner_text() for n in order_names)
    page.assert_clean()


def test_push_mode_sites_keep_results_for_the_signed_in_visitor(page, stack):
    """A site that hands the token over from its own script (botctl.identify, a moment after load): the
    widget waits for it before deciding whether the kept results are shown."""
    page.goto("/?mode=push")
    page.page.click("#login-grace")
    page.wait_state("ready", identity="signed-in")
    page.open()
    page.run_from_tray("shopify.list_my_orders")
    page.w(".result-msg[data-action='shopify.list_my_orders']").wait_for()
    page.page.reload()
    page.wait_state("ready", identity="signed-in")
    page.open()
    page.w(".result-msg[data-action='shopify.list_my_orders']").wait_for()
    assert page.w(".result-msg").count() == 1
    page.page.click("#logout")
    page.wait_state("ready", identity="anonymous")
    page.open()
    page.page.wait_for_timeout(3500)  # past the wait for a token that does not come
    assert page.w(".result-msg").count() == 0
    seed = stack.sandbox.seed()
    assert not any(n in storage_dump(page) for n in seed["shopify"]["grace@example.com"]["order_names"])
    page.assert_clean()


def test_answer_markdown_is_rendered_with_dom_calls_and_an_xss_attempt_is_inert(page, stack):
    page.goto()
    page.open()
    title = page.page.title()
    answer = page.ask("Do trail credits expire?")  # tests/data/widget_answers/trail-credits.txt
    # Bold, and a link to an http(s) URL only: new tab, no opener, no referrer.
    assert answer.locator("strong").first.inner_text() == "never expire"
    link = answer.locator("a[href='https://juniper.example/credits']")
    assert link.inner_text() == "the credits page"
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("target") == "_blank"
    # The document's javascript: link is text only; its <img onerror> is shown as the characters written.
    text = answer.inner_text()
    assert "the credits rules" in text and "javascript:" not in text
    assert "<img src=x id=pwned" in text
    hrefs = answer.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert all(h.startswith(("https://", "http://")) for h in hrefs), hrefs
    shadow = "document.getElementById('botctl-widget').shadowRoot"
    assert page.page.evaluate(f"{shadow}.querySelector('#pwned, img:not(.logo), script, [onerror]')") is None
    assert page.page.title() == title  # the onerror never ran
    page.shot("visitor-03-markdown-answer")
    page.assert_clean()  # strict CSP with Trusted Types: no violation, no console error


def test_a_tampered_transcript_renders_as_the_same_safe_subset(page, stack):
    """What sessionStorage holds is read back as data: lists, bold and http(s) links render; HTML, script
    URLs and unknown entries do not (a script on the page could write anything there)."""
    page.goto()
    evil = {
        "v": 1,
        "conversation": None,
        "private": False,
        "entries": [
            {"kind": "me", "text": "<img src=x id=pwned1 onerror=alert(1)>"},
            {
                "kind": "answer",
                "question": "q",
                "grounded": True,
                "suggested": [],
                "answerId": None,
                "text": "Intro **bold <b>x</b>**:\n- one [ok](https://juniper.example/a)\n"
                "- two [bad](javascript:alert(1)) [data](data:text/html,<script>alert(1)</script>)\n\n"
                "1. first\n2. second https://juniper.example/bare.",
                "citations": [
                    {"title": "<img src=x id=pwned2>", "section": "S", "url": "javascript:alert(1)"}
                ],
            },
            {
                "kind": "result",
                "action": "shopify.list_my_orders",
                "result": {"orders": [{"name": "<img id=pwned3 src=x>"}]},
            },
            {"kind": "script", "text": "<script>alert(1)</script>"},
        ],
    }
    page.page.evaluate(
        "([k, v]) => sessionStorage.setItem(k, v)", ["botctl:acme:conversation", json.dumps(evil)]
    )
    page.page.reload()
    page.wait_state("ready")
    page.open()
    answer = page.w(".msg.answer").first
    answer.wait_for()
    assert answer.locator(":scope > ul > li").count() == 2 and answer.locator(":scope > ol > li").count() == 2
    assert answer.locator("strong").inner_text() == "bold <b>x</b>"
    hrefs = answer.locator("a").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://juniper.example/a", "https://juniper.example/bare"], hrefs
    assert "bad" in answer.inner_text() and "data" in answer.inner_text()
    source = answer.locator(".sources li")
    assert source.inner_text() == "<img src=x id=pwned2> — S" and source.locator("a").count() == 0
    assert page.w(".msg.me").first.inner_text() == "<img src=x id=pwned1 onerror=alert(1)>"
    assert "<img id=pwned3 src=x>" in page.w(".result-msg").inner_text()
    shadow = "document.getElementById('botctl-widget').shadowRoot"
    assert page.page.evaluate(f"{shadow}.querySelector('[id^=pwned], img:not(.logo), script, b')") is None
    assert "<script>" not in page.w(".log").inner_text()  # the unknown entry was dropped
    page.shot("visitor-04-tampered-transcript")
    page.assert_clean()


def test_workspace_look_dark_mode_logo_and_french(browser, stack):
    p = Page(browser, stack, color_scheme="dark")
    try:
        p.goto("/?lang=fr")
        p.open()
        panel_bg = p.w(".panel").evaluate("el => getComputedStyle(el).backgroundColor")
        assert panel_bg == "rgb(24, 27, 33)", panel_bg  # dark, as the visitor's system prefers
        head = p.w(".head").evaluate("el => getComputedStyle(el).backgroundColor")
        assert head == "rgb(31, 95, 74)", head  # the workspace's accent (botctl widget set --accent)
        logo = p.w(".head img.logo")
        assert logo.is_visible() and logo.get_attribute("src") == stack.site + "/favicon.svg"
        assert logo.evaluate("img => img.complete && img.naturalWidth > 0")
        assert p.w(".launcher").get_attribute("aria-label") == "Discuter avec Juniper & Pine Support"
        assert p.w("#botctl-q").get_attribute("placeholder") == "Posez une question…"
        assert "Bonjour" in p.w(".msg.greeting").inner_text()
        assert p.w(".who").inner_text() == "Non connecté·e"
        answer = p.ask(REFUNDS)
        assert answer.locator(".rate").get_attribute("aria-label") == "Cette réponse vous a-t-elle aidé ?"
        p.shot("visitor-05-dark-french")
        p.assert_clean()
    finally:
        p.close()


def test_bad_theme_values_never_reach_the_page(browser, stack):
    """widget-config written around the CLI's checks (straight into vault.db): a CSS injection as the accent
    and a javascript: logo are ignored by the widget, which falls back to its own look."""
    vault = stack.home / "vault.db"
    conn = sqlite3.connect(vault)
    good = conn.execute("SELECT settings FROM widget_settings").fetchone()[0]
    bad = {"accent": "#fff;}:host{display:none", "logo": "javascript:alert(1)", "locale": "xx"}
    try:
        with conn:
            conn.execute("UPDATE widget_settings SET settings = ?", (json.dumps(bad),))
        p = Page(browser, stack)
        try:
            p.goto()
            p.open()
            assert p.w(".launcher").is_visible()
            bg = p.w(".launcher").evaluate("el => getComputedStyle(el).backgroundColor")
            assert bg == "rgb(29, 78, 216)", bg  # the widget's default accent
            assert p.w(".head img.logo").is_hidden() and p.w(".head img.logo").get_attribute("src") is None
            assert p.w(".who").inner_text() == "Not signed in"
            p.assert_clean()
        finally:
            p.close()
    finally:
        with conn:
            conn.execute("UPDATE widget_settings SET settings = ?", (good,))
        conn.close()


def test_thumbs_up_and_down_are_recorded_for_the_operator(page, stack):
    page.goto()
    page.open()
    unknown = page.ask(UNKNOWN)
    down = unknown.locator("button[data-vote=down]")
    down.click()
    unknown.locator(".rate .thanks", has_text="Thanks for your feedback.").wait_for()
    assert down.get_attribute("aria-pressed") == "true"
    good = page.ask(REFUNDS)
    good.locator("button[data-vote=up]").click()
    good.locator(".rate .thanks", has_text="Thanks").wait_for()
    page.shot("visitor-06-feedback")
    # The operator's list: the question the bot failed, down-voted; the well-answered one only with --all.
    rows = json.loads(botctl("knowledge", "feedback", "-w", "acme", "--json", env=stack.env).stdout)
    assert [(r["question"], r["down"], r["grounded"]) for r in rows] == [(UNKNOWN, 1, False)]
    every = json.loads(botctl("knowledge", "feedback", "-w", "acme", "--all", "--json", env=stack.env).stdout)
    assert {r["question"] for r in every} == {UNKNOWN, REFUNDS}
    # Nothing about the visitor but the workspace's own id, and an anonymous visitor has none.
    conn = sqlite3.connect(stack.home / "vault.db")
    stored = conn.execute("SELECT visitor, question FROM answer_feedback").fetchall()
    conn.close()
    assert sorted(stored) == sorted([(None, UNKNOWN), (None, REFUNDS)])
    # A vote can only be about an answer the chat gave: the same id with other words is refused.
    headers = {"Origin": stack.site}
    chat = httpx.post(
        f"{stack.edge}/v1/workspaces/acme/chat", json={"message": REFUNDS}, headers=headers
    ).json()
    forged = {
        "answer_id": chat["answer_id"],
        "vote": "down",
        "question": "Your shop is a scam",
        "answer": chat["answer"],
    }
    r = httpx.post(f"{stack.edge}/v1/workspaces/acme/feedback", json=forged, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    ok = httpx.post(
        f"{stack.edge}/v1/workspaces/acme/feedback", headers=headers, json={**forged, "question": REFUNDS}
    )
    assert ok.status_code == 200
    page.assert_clean()


def test_talk_to_a_person_opens_a_ticket_with_the_conversation(page, stack):
    page.goto()
    page.open()
    # Anonymous: the ticket needs to know who to answer.
    page.w(".person").click()
    note = page.w(".msg[data-code=handoff_sign_in]")
    note.wait_for()
    assert "Sign in first" in note.inner_text() and SUPPORT_CONTACT in note.inner_text()
    page.page.click("#login-ada")
    page.wait_state("ready", identity="signed-in")
    page.open()
    page.ask(UNKNOWN)
    # The ticket form's description speaks to the visitor, not the operator.
    page.run_from_tray("zendesk.create_ticket")
    form = page.w("form[data-action='zendesk.create_ticket']")
    assert "visitor" not in form.inner_text().lower() and "someone from the team" in form.inner_text()
    form.locator("button", has_text="Cancel").click()
    # Consent first: cancelling sends nothing.
    before = len(page.requests)
    page.w(".person").click()
    sheet = page.w("form[data-confirm=handoff]")
    sheet.wait_for()
    assert "send this conversation to the support team" in sheet.inner_text()
    page.shot("visitor-07-handoff-consent")
    sheet.locator("button", has_text="Cancel").click()
    assert sheet.count() == 0
    assert not any("/actions/zendesk.create_ticket" in u for u in page.requests[before:])
    page.w(".person").click()
    page.w("form[data-confirm=handoff] button[type=submit]").click()
    sent = page.w(".msg[data-code=handoff_sent]")
    sent.wait_for()
    assert "is with the support team" in sent.inner_text()
    ticket_id = int(sent.inner_text().split("#", 1)[1].split()[0])
    page.shot("visitor-08-handoff-sent")
    # The ticket in the help desk carries the conversation, opened as Ada and audited.
    got = botctl(
        "actions",
        "run",
        "zendesk.get_my_ticket",
        "-w",
        "acme",
        "--as-email",
        "ada@example.com",
        "--as-sub",
        "u-ada",
        "--params",
        json.dumps({"ticket_id": ticket_id}),
        "--json",
        env=stack.env,
    ).stdout
    assert UNKNOWN in got and "don't know" in got
    audit = [
        json.loads(line)
        for line in botctl(
            "audit", "-w", "acme", "--action", "zendesk.create_ticket", "--json", env=stack.env
        ).stdout.splitlines()
    ]
    assert any(r["outcome"] == "ok" and r["actor"].get("sub") == "u-ada" for r in audit), audit
    page.assert_clean()


def test_talk_to_a_person_without_a_help_desk_says_how_to_reach_support(page, stack):
    """Last in this module: the module's stack is left without its help desk."""
    botctl("disconnect", "zendesk", "-w", "acme", "--yes", env=stack.env)
    page.goto()
    page.open()
    page.ask(UNKNOWN)
    page.w(".person").click()
    note = page.w(".msg[data-code=handoff_contact]")
    note.wait_for()
    assert note.inner_text() == "To reach a person: " + SUPPORT_CONTACT
    page.shot("visitor-09-handoff-contact")
    page.assert_clean()
