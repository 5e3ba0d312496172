"""`botctl console` in a real browser: Debian's Chromium driven by Playwright, against the operator scenario
(tests/operator_scenario.py: the real daemon, the sandbox's vendors, visitors' actions, a zendesk grant the
vendor revoked). The operator opens the printed link, sees the day's timeline, finds the request a visitor
reported by its id — with the keyboard only — opens the record, watches new records arrive, reads the
chain's status, finds zendesk in needs_reauth with its reconnect command, and sees the per-day chart. A
visitor's HTML in a record stays text. No CSP violation anywhere. Screenshots: test-artifacts/browser/.

Skips cleanly without Playwright or Chromium (never `playwright install`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("BOTCTL_CHROMIUM", "/usr/bin/chromium")
try:
    from playwright import sync_api
except ImportError as exc:
    pytest.skip(f"playwright is not usable ({exc}); pip install playwright", allow_module_level=True)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared operator scenario
from operator_scenario import Scenario, botctl, running_scenario  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CSP_PROBE = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__consoleTestCsp && window.__consoleTestCsp({directive: e.effectiveDirective, blocked: e.blockedURI,
                                                      sample: e.sample});
}, true);
"""
HOSTILE = '<img src=x onerror="window.__pwned=1">'


class Day:
    def __init__(self, scenario: Scenario, ids: dict[str, str], console: subprocess.Popen, url: str) -> None:
        self.s, self.ids, self.proc, self.url = scenario, ids, console, url
        self.base = url.split("/login", 1)[0]


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Iterator[Day]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_scenario(tmp_path_factory.mktemp("console-browser")) as s:
        ids = s.play_the_day()
        # A visitor's own text in a record: the subscription id they typed (refused by the schema).
        r = s.act("stripe.cancel_my_subscription", {"subscription_id": HOSTILE})
        assert r.status_code in (404, 422), r.text
        ids["hostile"] = r.json()["request_id"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "botctl", "console", "--no-browser"],
            env=s.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        try:
            yield Day(s, ids, proc, url)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page(day) -> Iterator[object]:
    pw = sync_api.sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    p = context.new_page()
    p.set_default_timeout(15_000)
    p.violations, p.errors = [], []
    p.expose_binding("__consoleTestCsp", lambda _source, v: p.violations.append(v))
    p.add_init_script(CSP_PROBE)
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.goto(day.url)  # the printed link: the token is exchanged for the session cookie
    try:
        yield p
    finally:
        context.close()
        browser.close()
        pw.stop()
    assert p.violations == [], p.violations


def active(p) -> dict:
    return p.evaluate(
        "() => { const e = document.activeElement; return {tag: e.tagName.toLowerCase(), "
        "id: e.id, text: (e.textContent || '').trim(), href: e.getAttribute('href') || ''}; }"
    )


def tab_to(p, predicate, limit: int = 80) -> dict:
    for _ in range(limit):
        p.keyboard.press("Tab")
        a = active(p)
        if predicate(a):
            return a
    raise AssertionError("Tab never reached the element")


def shot(p, name: str) -> None:
    p.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def test_the_timeline_after_the_link(page, day):
    assert page.url == day.base + "/"  # the token is gone from the address bar
    assert page.get_by_role("heading", name="Audit timeline").is_visible()
    page.wait_for_function("document.getElementById('chain').textContent.includes('Chain intact')")
    rows = page.locator("#timeline tbody tr")
    assert rows.count() >= 10
    assert page.locator("#timeline").get_by_text("zendesk.list_my_tickets").first.is_visible()
    assert page.locator("#timeline").get_by_text("connection.refresh_failed").first.is_visible()
    cookies = page.context.cookies()
    assert [(c["httpOnly"], c["sameSite"]) for c in cookies] == [(True, "Strict")]
    shot(page, "timeline")


def test_find_a_visitors_request_with_the_keyboard(page, day):
    page.goto(day.base + "/")
    page.keyboard.press("Tab")
    assert active(page)["text"] == "Skip to content"
    page.keyboard.press("Enter")
    tab_to(page, lambda a: a["id"] == "f-request_id")
    page.keyboard.type(day.ids["refused"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"**request_id={day.ids['refused']}**")
    cells = page.locator("#timeline tbody tr td:nth-child(9)").all_inner_texts()
    assert cells and set(cells) == {day.ids["refused"]}
    assert page.locator("#timeline").get_by_text("stripe.cancel_my_subscription").first.is_visible()
    shot(page, "filtered-by-request-id")
    # On to the record with Tab and Enter.
    link = tab_to(page, lambda a: a["href"].startswith("/records/"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{link['href']}")
    assert page.get_by_role("heading", name=f"Audit record {link['text']}").is_visible()
    assert page.locator("dl.fields").get_by_text(day.ids["refused"]).is_visible()
    assert (
        page.locator("dl.fields").get_by_text("forbidden").is_visible()
    )  # the audit keeps what the visitor was not told
    shot(page, "record")


def test_a_visitors_html_stays_text(page, day):
    page.goto(day.base + "/?request_id=" + day.ids["hostile"])
    href = page.locator("#timeline tbody tr td:first-child a").first.get_attribute("href")
    page.goto(day.base + href)
    assert page.locator("pre.detail").inner_text().count("onerror") >= 1
    assert "window.__pwned=1" in page.locator("pre.detail").inner_text()
    assert page.locator("img").count() == 0 and page.evaluate("window.__pwned") is None
    shot(page, "hostile-record")


def test_live_rows_arrive(page, day):
    page.goto(day.base + "/?connector=stripe")
    page.wait_for_selector("#live-toggle:not([hidden])")
    r = day.s.act("stripe.list_my_invoices")
    assert r.status_code == 200
    rid = r.json()["request_id"]
    page.locator("#timeline tbody tr.new").get_by_text(rid).wait_for()
    assert page.locator("#live-status").inner_text().startswith("1 new record")
    # The toggle works from the keyboard.
    tab_to(page, lambda a: a["id"] == "live-toggle")
    page.keyboard.press("Space")
    assert page.locator("#live-toggle").get_attribute("aria-pressed") == "false"
    shot(page, "live")


def test_needs_reauth_with_its_reconnect_command(page, day):
    page.goto(day.base + "/")
    tab_to(page, lambda a: a["href"] == "/connections")
    page.keyboard.press("Enter")
    page.wait_for_url("**/connections")
    hint = botctl("connections", "list", env=day.s.env).stderr
    command = hint.split("reconnect: ", 1)[1].strip().splitlines()[0]
    assert command.startswith("botctl connect zendesk -w acme")
    row = page.locator("tr.state-needs_reauth")
    assert row.count() == 1 and "zendesk" in row.inner_text()
    assert page.locator("tr.reconnect code").inner_text() == command
    assert page.locator("tr.state-active").filter(has_text="stripe").count() == 1
    shot(page, "connections")


def test_activity_chart(page, day):
    page.goto(day.base + "/activity?days=7")
    page.wait_for_selector(".chart[data-ready='1'] canvas")
    table = page.locator("table.activity").first.inner_text()
    assert "actions (ok)" in table and "refusals (denied)" in table
    assert page.errors == [], page.errors
    shot(page, "activity")


def test_without_the_link_nothing(page, day):
    other = page.context.browser.new_context()
    try:
        p = other.new_page()
        r = p.goto(day.base + "/")
        assert r.status == 401 and "audit" not in p.content().lower().replace("botctl console", "")
        r = p.goto(day.url)  # the link was spent by the operator's browser
        assert r.status == 401
    finally:
        other.close()


def test_live_rows_say_how_an_unknown_ended(page, day, monkeypatch):
    """A write recorded `unknown` and the late record of its real outcome, both written while the page is
    open (one poll held until both are in): the new rows say what `botctl audit` says beside each, as
    links to the other record."""
    from botctl.home import Home
    from botctl.session import Session

    monkeypatch.setenv("BOTCTL_MASTER_KEY", day.s.env["BOTCTL_MASTER_KEY"])
    page.goto(day.base + "/?outcome=unknown")
    page.wait_for_selector("#live-toggle:not([hidden])")
    held = []
    page.route("**/api/records?*", lambda route: held.append(route))
    for _ in range(100):  # the next poll, held: it is answered after both records are written
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the page did not poll"
    common = {
        "workspace": "acme",
        "actor": {"type": "visitor", "sub": "u-ada", "email": "ada@example.com"},
        "action": "stripe.cancel_my_subscription",
        "connector": "stripe",
        "request_id": "req_LATEBROWSER1",
    }
    with Session(Home(day.s.home)) as app:
        unknown = app.audit(
            "action.run", outcome="unknown", reason="interrupted", detail={"pending_id": 99}, **common
        )["seq"]
        late = app.audit(
            "action.outcome_late",
            outcome="ok",
            detail={"pending_id": 99, "resolves": {"seq": unknown, "outcome": "unknown"}},
            **common,
        )["seq"]
    held[0].continue_()
    page.unroute("**/api/records?*")
    rows = page.locator("#timeline tbody tr.new")
    late_row = rows.filter(has=page.locator(f'td:first-child a[href="/records/{late}"]'))
    late_row.wait_for()
    unknown_row = rows.filter(has=page.locator(f'td:first-child a[href="/records/{unknown}"]'))
    reason = unknown_row.locator("td:nth-child(8)")
    assert reason.inner_text() == f"interrupted (late: ok #{late})"
    assert reason.locator("a").get_attribute("href") == f"/records/{late}"
    reason = late_row.locator("td:nth-child(8)")
    assert reason.inner_text() == f"(resolves #{unknown}, was unknown)"
    assert reason.locator("a").get_attribute("href") == f"/records/{unknown}"
    shot(page, "live-late-outcome")
    reason.locator("a").click()
    page.wait_for_url(f"**/records/{unknown}")
    assert page.locator("dl.fields").get_by_text(f"ok, record {late}").is_visible()


def test_zz_a_broken_chain_names_its_first_bad_record(page, day):
    """Last (it breaks the log): an attacker without the key edits record 9 in place; the next record moves
    the head, and the timeline's status says where the chain breaks, with a link to that record."""
    import sqlite3

    db = sqlite3.connect(day.s.home / "audit.db")
    body = db.execute("SELECT body FROM records WHERE seq = 9").fetchone()[0]
    db.execute("UPDATE records SET body = ? WHERE seq = 9", (body.replace("visitor", "operator", 1),))
    db.commit()
    db.close()
    assert day.s.act("stripe.list_my_invoices").status_code == 200
    page.goto(day.base + "/")
    page.wait_for_function("document.getElementById('chain').textContent.includes('BROKEN')")
    assert "Chain BROKEN at record 9" in page.locator("#chain").inner_text()
    assert page.locator("#chain a").first.get_attribute("href") == "/records/9"
    assert page.locator("#timeline tr.chain-bad td:first-child").inner_text() == "9"  # the row is marked
    shot(page, "chain-broken")
