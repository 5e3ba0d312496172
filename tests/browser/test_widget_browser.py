"""The widget in a real browser: Debian's Chromium driven by Playwright, against a real daemon and the
example site on two different loopback origins (so CORS and the site's CSP are the browser's own).

Skips cleanly when Playwright or Chromium is missing (`pip install playwright`; `apt-get install chromium`;
never `playwright install`). Screenshots of each state go to test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from botctl import crypto
from botctld.widget_bundle import bundle

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("BOTCTL_CHROMIUM", "/usr/bin/chromium")
try:
    from playwright import sync_api
except ImportError as exc:  # not installed, or its driver unusable here
    pytest.skip(f"playwright is not usable ({exc}); pip install playwright", allow_module_level=True)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
SITE_SERVER = REPO / "examples" / "site" / "server.py"
KNOWLEDGE = REPO / "tests" / "data" / "knowledge"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
W = "#botctl-widget"  # the widget's host element; Playwright's CSS locators pierce its (open) shadow root

# Reports CSP violations from every document the page loads (registered before any page script runs).
CSP_PROBE = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__botctlTestCsp && window.__botctlTestCsp({directive: e.effectiveDirective, blocked: e.blockedURI,
                                                    source: e.sourceFile, sample: e.sample});
}, true);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def botctl(*args: str, env: dict[str, str], input: str | None = None, check: bool = True):
    proc = subprocess.run([sys.executable, "-m", "botctl", *args], env=env, input=input, capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"botctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up")
        time.sleep(0.05)


class Stack:
    """A daemon in a temp home (acme: shopify + zendesk + stripe against the sandbox), the example site on
    the workspace's allowed origin, and the same site on a second origin the workspace does not allow."""

    def __init__(self, tmp: Path, sandbox) -> None:
        self.sandbox = sandbox
        self.edge = f"http://127.0.0.1:{free_port()}"
        self.site = f"http://127.0.0.1:{free_port()}"
        self.foreign = f"http://127.0.0.1:{free_port()}"
        self.env = {**os.environ, "BOTCTL_HOME": str(tmp / "home"), "BOTCTL_NO_KEYRING": "1",
                    "BOTCTL_MASTER_KEY": base64.b64encode(crypto.new_key()).decode(), "NO_COLOR": "1"}
        self.procs: list[subprocess.Popen] = []
        self.daemon_started = False
        env = self.env
        botctl("workspace", "create", "acme", "--plan", "pro", "--origin", self.site,
               "--display-name", "Juniper & Pine Support", env=env)
        creds = sandbox.credentials()
        for name, extra in (("shopify", ["--shop", "acme"]), ("zendesk", ["--subdomain", "acme"])):
            botctl("connect", name, "-w", "acme", "--sandbox", sandbox.url, *extra, "--access-token-stdin",
                   env=env, input=creds[name]["access_token"] + "\n")
        botctl("connect", "stripe", "-w", "acme", "--sandbox", sandbox.url, "--api-key-stdin", env=env,
               input=creds["stripe"]["api_key"] + "\n")
        # The site's secret, as an operator would hand it to the site's backend: a 0600 file.
        rotated = botctl("identity", "rotate", "-w", "acme", "--json", env=env).stdout
        self.secret_file = tmp / "site-secret.json"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(rotated)
        # `botctl knowledge` is part of issue #6 too: the cited-answer test runs once it exists.
        self.knowledge = botctl("knowledge", "--help", env=env, check=False).returncode == 0
        if self.knowledge:
            botctl("knowledge", "add", "-w", "acme", str(KNOWLEDGE), env=env)
        botctl("daemon", "start", "--port", str(urlsplit(self.edge).port), env=env)
        self.daemon_started = True
        for origin in (self.site, self.foreign):
            self.procs.append(subprocess.Popen(
                [sys.executable, str(SITE_SERVER), "--edge", self.edge, "--workspace", "acme", "--secret-file",
                 str(self.secret_file), "--port", str(urlsplit(origin).port), "--quiet"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for origin in (self.site, self.foreign):
            wait_http(origin + "/healthz")
        wait_http(self.edge + "/readyz")

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.daemon_started:
            botctl("daemon", "stop", env=self.env, check=False)


@pytest.fixture(scope="module")
def stack(sandbox_server, tmp_path_factory) -> Iterator[Stack]:
    sandbox_server.reset()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s = None
    try:
        s = Stack(tmp_path_factory.mktemp("browser"), sandbox_server)
        yield s
    finally:
        if s is not None:
            s.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


class Page:
    """One browser context + page, recording what a strict site would care about."""

    def __init__(self, browser, stack: Stack, **context_opts) -> None:
        self.stack = stack
        # Reduced motion: no opening animation, so geometry and screenshots are stable.
        self.context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, "reduced_motion": "reduce",
                                              **context_opts})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.csp: list[dict] = []
        self.console: list[str] = []
        self.requests: list[str] = []
        self.responses: list[tuple[int, str]] = []
        self.failed: list[str] = []
        self.page.expose_binding("__botctlTestCsp", lambda _source, v: self.csp.append(v))
        self.page.add_init_script(CSP_PROBE)
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                     else None)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("response", lambda r: self.responses.append((r.status, r.url)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))

    # -- navigation and the widget ---------------------------------------------------------------

    def goto(self, path: str = "/", origin: str | None = None, state: str = "ready") -> None:
        self.page.goto((origin or self.stack.site) + path)
        self.wait_state(state)

    def wait_state(self, state: str, identity: str | None = None) -> None:
        sel = f"{W}[data-state={state}]" + (f"[data-identity={identity}]" if identity else "")
        self.page.wait_for_selector(sel, state="attached")

    def w(self, selector: str):
        return self.page.locator(f"{W} {selector}")

    def active(self) -> dict:
        """What has focus inside the widget's shadow root."""
        return self.page.evaluate("""() => { const a = document.getElementById('botctl-widget').shadowRoot.activeElement;
            return a ? {tag: a.tagName.toLowerCase(), id: a.id, cls: a.className} : null; }""")

    def open(self) -> None:
        if self.w(".launcher").get_attribute("aria-expanded") != "true":
            self.w(".launcher").click()
        self.w(".panel").wait_for(state="visible")

    def ask(self, question: str) -> object:
        n = self.w(".msg.answer").count()
        self.w("#botctl-q").fill(question)
        self.w("#botctl-q").press("Enter")
        answer = self.w(".msg.answer").nth(n)
        answer.wait_for()
        return answer

    def run_from_tray(self, action: str) -> None:
        if self.w(".tools").get_attribute("aria-expanded") != "true":
            self.w(".tools").click()
        self.w(f".act[data-action='{action}']").click()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    # -- what the page must never do ---------------------------------------------------------------

    def assert_clean(self, refusals: int = 0) -> None:
        """No CSP violation, no console error or warning, no request off the two origins. `refusals`: HTTP
        4xx answers the test provoked (Chromium logs each as "Failed to load resource")."""
        assert self.csp == [], f"CSP violations: {self.csp}"
        console = [c for c in self.console if "Failed to load resource: the server responded with a status of 4" not in c]
        assert console == [], f"console errors/warnings: {self.console}"
        assert len(self.console) == refusals, self.console
        allowed = {self.stack.site, self.stack.edge}
        foreign = [u for u in self.requests if not u.startswith(("data:", "blob:"))
                   and f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" not in allowed]
        assert foreign == [], f"requests to other origins: {foreign}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, stack) -> Iterator[Page]:
    p = Page(browser, stack)
    try:
        yield p
    finally:
        p.close()


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
    assert "returns.md — Refunds" in sources.first.inner_text()
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
    assert page.page.evaluate("document.getElementById('botctl-widget').shadowRoot.querySelector('#pwned, b')") is None
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
    assert page.page.evaluate("document.getElementById('botctl-widget').shadowRoot.querySelector('img')") is None
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
    page.page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")  # what the widget never does
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
        p.w(".close").focus()
        p.page.keyboard.press("Shift+Tab")
        assert "send" in p.active()["cls"]
        p.page.keyboard.press("Tab")
        assert "close" in p.active()["cls"]
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
