"""The browser tests' harness (tests/browser/test_widget_*.py): a daemon with the example site on two
loopback origins (Stack), one Chromium page recording what a strict site would care about (Page); their
fixtures are in conftest.py. Screenshots go to test-artifacts/browser/.

Playwright drives Debian's Chromium (never `playwright install`); each test module skips cleanly when
either is missing (`skip_without_browser`).
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from botctl import crypto

CHROMIUM = os.environ.get("BOTCTL_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
SITE_SERVER = REPO / "examples" / "site" / "server.py"
KNOWLEDGE = REPO / "tests" / "data" / "knowledge"
WIDGET_ANSWERS = REPO / "tests" / "data" / "widget_answers"  # Markdown and an XSS attempt in an answer
HELP_CENTER = "https://help.juniper.example/articles"
SUPPORT_CONTACT = "Email help@juniper.example, Monday to Friday; we answer within a day."
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
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
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
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
        self.home = tmp / "home"
        self.env = {
            **os.environ,
            "BOTCTL_HOME": str(self.home),
            "BOTCTL_NO_KEYRING": "1",
            "BOTCTL_MASTER_KEY": base64.b64encode(crypto.new_key()).decode(),
            "NO_COLOR": "1",
        }
        self.procs: list[subprocess.Popen] = []
        self.daemon_started = False
        env = self.env
        botctl(
            "workspace",
            "create",
            "acme",
            "--plan",
            "pro",
            "--origin",
            self.site,
            "--display-name",
            "Juniper & Pine Support",
            env=env,
        )
        # The site's look: its accent (the launcher's colour the tests check) and its logo (a same-origin path).
        botctl(
            "widget",
            "set",
            "-w",
            "acme",
            "--accent",
            "#1f5f4a",
            "--logo",
            "/favicon.svg",
            "--support-contact",
            SUPPORT_CONTACT,
            env=env,
        )
        creds = sandbox.credentials()
        for name, extra in (("shopify", ["--shop", "acme"]), ("zendesk", ["--subdomain", "acme"])):
            botctl(
                "connect",
                name,
                "-w",
                "acme",
                "--sandbox",
                sandbox.url,
                *extra,
                "--access-token-stdin",
                env=env,
                input=creds[name]["access_token"] + "\n",
            )
        botctl(
            "connect",
            "stripe",
            "-w",
            "acme",
            "--sandbox",
            sandbox.url,
            "--api-key-stdin",
            env=env,
            input=creds["stripe"]["api_key"] + "\n",
        )
        # The site's secret, as an operator would hand it to the site's backend: a 0600 file.
        rotated = botctl("identity", "rotate", "-w", "acme", "--json", env=env).stdout
        self.secret_file = tmp / "site-secret.json"
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(rotated)
        # `botctl knowledge` is part of issue #6 too: the cited-answer test runs once it exists.
        self.knowledge = botctl("knowledge", "--help", env=env, check=False).returncode == 0
        if self.knowledge:
            botctl("knowledge", "add", "-w", "acme", str(KNOWLEDGE), "--url-base", HELP_CENTER, env=env)
            botctl("knowledge", "add", "-w", "acme", str(WIDGET_ANSWERS), env=env)
        botctl("daemon", "start", "--port", str(urlsplit(self.edge).port), env=env)
        self.daemon_started = True
        for origin in (self.site, self.foreign):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(SITE_SERVER),
                        "--edge",
                        self.edge,
                        "--workspace",
                        "acme",
                        "--secret-file",
                        str(self.secret_file),
                        "--port",
                        str(urlsplit(origin).port),
                        "--quiet",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
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


class Page:
    """One browser context + page, recording what a strict site would care about."""

    def __init__(self, browser, stack: Stack, **context_opts) -> None:
        self.stack = stack
        # Reduced motion: no opening animation, so geometry and screenshots are stable.
        self.context = browser.new_context(
            **{"viewport": {"width": 1280, "height": 800}, "reduced_motion": "reduce", **context_opts}
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.csp: list[dict] = []
        self.console: list[str] = []
        self.requests: list[str] = []
        self.responses: list[tuple[int, str]] = []
        self.failed: list[str] = []
        self.page.expose_binding("__botctlTestCsp", lambda _source, v: self.csp.append(v))
        self.page.add_init_script(CSP_PROBE)
        self.page.on(
            "console",
            lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
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
        console = [
            c
            for c in self.console
            if "Failed to load resource: the server responded with a status of 4" not in c
        ]
        assert console == [], f"console errors/warnings: {self.console}"
        assert len(self.console) == refusals, self.console
        allowed = {self.stack.site, self.stack.edge}
        foreign = [
            u
            for u in self.requests
            if not u.startswith(("data:", "blob:"))
            and f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" not in allowed
        ]
        assert foreign == [], f"requests to other origins: {foreign}"

    def close(self) -> None:
        self.context.close()


def skip_without_browser() -> None:
    """Skip the calling test module when Playwright or Chromium is missing."""
    import pytest

    try:
        from playwright import sync_api  # noqa: F401
    except ImportError as exc:  # not installed, or its driver unusable here
        pytest.skip(f"playwright is not usable ({exc}); pip install playwright", allow_module_level=True)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)
