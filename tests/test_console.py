"""`botctl console` over real HTTP: a real `botctl console --no-browser` process on loopback, a real home.

Access (one-time token → HttpOnly SameSite=Strict cookie, 401 without it, Host and method checks, CSP on
every answer), the timeline's filters (the library's Filters), live rows, escaping of attacker-influenced
record fields, the chain's verdict (and the first bad record once broken), connections with the
reconnect command, activity per day. The browser side is tests/browser/test_console_browser.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlite_utils

from botctl import connections, refresh_state, workspaces
from botctl.session import Session

REPO = Path(__file__).resolve().parent.parent
HOSTILE_REASON = "<script>alert('reason')</script>"
HOSTILE_SUBJECT = "</pre><img src=x onerror=alert(1)>\u202egnp.exe"
HOSTILE_RID = 'req_"><svg onload=alert(2)>'


class Running:
    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc = proc
        self.login_url = url
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.port = parts.port
        self.token = parts.query.split("=", 1)[1]

    def login(self) -> str:
        """Exchange the token; returns the Cookie header value."""
        r = httpx.get(self.login_url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        set_cookie = r.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
        return set_cookie.split(";", 1)[0]

    def get(self, path: str, cookie: str | None, **kw) -> httpx.Response:
        headers = {"Cookie": cookie} if cookie else {}
        return httpx.get(self.base + path, headers={**headers, **kw.pop("headers", {})}, timeout=30, **kw)


def start_console(env: dict[str, str] | None = None, *args: str) -> Running:
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "console", "--no-browser", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or os.environ.copy(),
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"botctl console printed {line!r}; stderr: {proc.stderr.read()}")
    running = Running(proc, line)
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(running.base + "/", timeout=1)
            return running
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def stop(running: Running) -> None:
    running.proc.terminate()
    try:
        running.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        running.proc.kill()
        running.proc.wait(timeout=5)


@pytest.fixture
def populated(home, cli, sandbox):
    """acme with stripe connected (through the sandbox) and then marked needs_reauth; audit records with
    hostile text in the fields a visitor or vendor can influence."""
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    key = sandbox.credentials()["stripe"]["api_key"]
    r = cli("connect", "stripe", "-w", "acme", "--sandbox", sandbox.url, "--api-key-stdin", input=key + "\n")
    assert r.code == 0, r.err
    with Session(home) as app:
        ws = workspaces.get(app.vault.conn, "acme")
        refresh_state.mark_needs_reauth(
            app, ws, connections.get(app.vault.conn, ws, "stripe"), "the vendor refused the key"
        )
        app.audit(
            "action.run",
            workspace="acme",
            actor={"type": "visitor", "sub": "u1", "email": "mallory@example.com"},
            action="zendesk.create_ticket",
            connector="zendesk",
            outcome="denied",
            reason=HOSTILE_REASON,
            request_id=HOSTILE_RID,
            detail={"params": {"subject": HOSTILE_SUBJECT}},
        )
        app.audit(
            "action.run",
            workspace="acme",
            actor={"type": "visitor", "sub": "u2", "email": "ada@example.com"},
            action="stripe.list_my_invoices",
            connector="stripe",
            outcome="ok",
            request_id="req_ADA0000001",
        )
        app.audit(
            "action.run",
            workspace="acme",
            actor={"type": "visitor", "sub": "u2", "email": "ada@example.com"},
            action="stripe.list_my_invoices",
            connector="stripe",
            outcome="denied",
            reason="forbidden",
            request_id="req_ADA0000002",
            ts=(datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
    return home


@pytest.fixture
def console(populated) -> Iterator[Running]:
    running = start_console()
    yield running
    stop(running)


def test_token_cookie_and_401(console):
    # Nothing without the session: pages, API, static files, a record.
    for path in (
        "/",
        "/api/records?after=0",
        "/api/verify",
        "/static/console.js",
        "/records/1",
        "/connections",
        "/nope",
    ):
        r = console.get(path, None)
        assert r.status_code == 401, path
        assert "botctl console" in r.text and "audit" not in r.text.lower().replace("botctl console", "")
    assert console.get("/", "botctl_console_%d=guess" % console.port).status_code == 401
    # A wrong token (same length, one character off) is refused and does not spend the right one.
    wrong = console.token[:-1] + ("A" if console.token[-1] != "A" else "B")
    assert console.get(f"/login?token={wrong}", None).status_code == 401
    assert console.get("/login", None).status_code == 401
    cookie = console.login()
    assert cookie.startswith(f"botctl_console_{console.port}=") and console.token not in cookie
    assert console.get("/", cookie).status_code == 200
    # One time: the link does not work again (another browser, a leaked history entry).
    again = httpx.get(console.login_url, follow_redirects=False)
    assert again.status_code == 401 and "set-cookie" not in again.headers
    # Another console's cookie does not open this one.
    other = start_console()
    try:
        other_cookie = other.login()
        assert (
            console.get("/", other_cookie.replace(f"_{other.port}=", f"_{console.port}=")).status_code == 401
        )
    finally:
        stop(other)


def test_host_method_and_headers(console):
    cookie = console.login()
    # A DNS-rebinding page reaches 127.0.0.1 under its own name: refused before anything else.
    r = console.get("/", cookie, headers={"Host": f"attacker.example:{console.port}"})
    assert r.status_code == 421
    assert console.get("/", cookie, headers={"Host": f"localhost:{console.port}"}).status_code == 200
    r = httpx.post(console.base + "/", headers={"Cookie": cookie})
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    for path in (
        "/",
        "/connections",
        "/activity",
        "/verify",
        "/records/1",
        "/api/verify",
        "/static/console.js",
    ):
        r = console.get(path, cookie)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp and "require-trusted-types-for 'script'" in csp
        assert (
            r.headers["referrer-policy"] == "no-referrer" and r.headers["x-content-type-options"] == "nosniff"
        )
    page = console.get("/", cookie).text
    # No inline script or style anywhere: every <script> has a src, no style= attribute, no <style>.
    assert (
        re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
        and "<style" not in page
        and " style=" not in page
    )
    assert "cdn" not in page.lower() and "https://" not in page


def test_listens_on_loopback_only(console):
    port_hex = f"{console.port:04X}"
    listening = [
        line.split()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1].endswith(":" + port_hex) and line.split()[3] == "0A"
    ]
    assert [entry[1] for entry in listening] == [f"0100007F:{port_hex}"]
    ipv6 = Path("/proc/net/tcp6")
    if ipv6.exists():
        assert not [
            line
            for line in ipv6.read_text().splitlines()[1:]
            if line.split()[1].endswith(":" + port_hex) and line.split()[3] == "0A"
        ]


def test_hostile_fields_render_inert(console):
    cookie = console.login()
    for path in ("/", "/records/%d" % _seq_of(console, cookie, "zendesk.create_ticket")):
        html = console.get(path, cookie).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
        assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in html
    detail = console.get("/records/%d" % _seq_of(console, cookie, "zendesk.create_ticket"), cookie).text
    assert "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;" in detail
    assert "\u202e" not in detail and "\\u202egnp.exe" in detail  # the bidi override shown, not obeyed
    # JSON for the live rows: the same display strings (the script inserts them with textContent only).
    rows = console.get("/api/records?after=0&outcome=denied", cookie).json()["rows"]
    assert rows[0]["reason"] == HOSTILE_REASON and rows[0]["request_id_raw"] == HOSTILE_RID
    js = (REPO / "src" / "botctl" / "console" / "static" / "console.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


def _seq_of(console, cookie, action):
    rows = console.get("/api/records?after=0&action=" + action, cookie).json()["rows"]
    return rows[0]["seq"]


def test_timeline_filters_are_the_cli_filters(console, cli):
    cookie = console.login()
    page = console.get("/?request_id=req_ADA0000002", cookie).text
    assert "req_ADA0000002" in page and "req_ADA0000001" not in page and "1 latest matching record," in page
    page = console.get("/?actor=visitor:ada@example.com&outcome=ok", cookie).text
    assert "req_ADA0000001" in page and "req_ADA0000002" not in page
    since = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    for query, flags in (
        (f"since={since}&connector=stripe", ["--since", since, "--connector", "stripe"]),
        ("until=2h&workspace=acme", ["--until", "2h", "-w", "acme"]),
        ("visitor=ADA@example.com", ["--visitor", "ADA@example.com"]),
        (
            "event=action.run&action=stripe.list_my_invoices",
            ["--event", "action.run", "--action", "stripe.list_my_invoices"],
        ),
    ):
        shown = [r["seq"] for r in console.get(f"/api/records?after=0&{query}", cookie).json()["rows"]]
        expected = [r["seq"] for r in cli("audit", "--json", "-n", "1000", *flags).ndjson()]
        assert shown == expected and expected, query
    # Bad input: said on the page, 400, nothing selected, no traceback.
    r = console.get("/?since=yesterday-ish", cookie)
    assert r.status_code == 400 and "since &#39;yesterday-ish&#39; is neither a duration nor a date" in r.text
    r = console.get("/?outcome=maybe", cookie)
    assert r.status_code == 400 and "unknown outcome" in r.text
    assert console.get("/?n=0", cookie).status_code == 400
    assert console.get("/api/records?after=x", cookie).status_code == 400
    assert console.get("/records/99999", cookie).status_code == 404
    assert console.get("/records/99999999999999999999999", cookie).status_code == 404


def test_live_rows_arrive_with_the_filters(console, populated):
    cookie = console.login()
    page = console.get("/?connector=zendesk", cookie).text
    after = int(re.search(r'data-after="(\d+)"', page).group(1))
    assert console.get(f"/api/records?after={after}&connector=zendesk", cookie).json() == {
        "rows": [],
        "next": after,
    }
    with Session(populated) as app:
        app.audit("action.run", workspace="acme", connector="stripe", request_id="req_LIVE000001")
        app.audit("action.run", workspace="acme", connector="zendesk", request_id="req_LIVE000002")
    got = console.get(f"/api/records?after={after}&connector=zendesk", cookie).json()
    assert [r["request_id"] for r in got["rows"]] == ["req_LIVE000002"] and got["next"] == after + 2


def test_chain_status_and_first_bad_record(console, populated):
    cookie = console.login()
    v = console.get("/api/verify", cookie).json()
    assert v["state"] == "intact" and v["ok"] is True and v["first_bad_seq"] is None
    assert "Intact:" in console.get("/verify", cookie).text
    # An attacker edits record 3's body in place (no key: the MAC no longer matches)...
    db = sqlite_utils.Database(populated.audit_db)
    body = db.execute("SELECT body FROM records WHERE seq = 3").fetchone()[0]
    db.execute("UPDATE records SET body = ? WHERE seq = 3", [body.replace("ok", "ko", 1)])
    db.conn.commit()
    db.close()
    with Session(populated) as app:  # ...and the log goes on (the writer checks only the head)
        app.audit("test.after_edit")
    v = console.get("/api/verify", cookie).json()
    assert v["state"] == "broken" and v["first_bad_seq"] == 3 and v["problem"]
    page = console.get("/verify", cookie).text
    assert 'href="/records/3"' in page and "Broken" in page


def test_connections_show_state_and_the_reconnect_command(console, populated, cli):
    cookie = console.login()
    page = console.get("/connections", cookie).text
    with Session(populated) as app:
        ws = workspaces.get(app.vault.conn, "acme")
        expected = connections.get(app.vault.conn, ws, "stripe").reconnect_command()
    assert "needs_reauth" in page and "the vendor refused the key" in page
    assert f"<code>{expected}</code>" in page
    assert f"reconnect: {expected}" in cli("connections", "list").err  # the CLI's own hint: the same command
    assert "1 needs reconnecting" in page


def test_activity_per_day(console):
    cookie = console.login()
    a = console.get("/api/activity?days=7", cookie).json()
    today, yesterday = a["days"][-1], a["days"][-2]
    assert today == datetime.now(UTC).date().isoformat() and len(a["days"]) == 7
    acme = next(w for w in a["workspaces"] if w["workspace"] == "acme")
    assert acme["actions"][-1] == 1 and acme["refusals"][-1] == 1 and acme["refusals"][-2] == 1
    assert sum(acme["errors"]) == 0
    page = console.get("/activity?days=7", cookie).text
    assert f'<th scope="row">{yesterday}</th><td>0</td><td>1</td><td>0</td>' in page
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page


def test_vendored_chart_library_is_what_its_note_says():
    folder = REPO / "src" / "botctl" / "console" / "static" / "vendor" / "uplot"
    note = (folder / "VENDORED.md").read_text()
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"| {name} | {digest} |" in note
    assert "MIT" in (folder / "LICENSE").read_text()


def test_no_home_and_port_taken(tmp_path, populated):
    env = {**os.environ, "BOTCTL_HOME": str(tmp_path / "nothing-here")}
    r = subprocess.run(
        [sys.executable, "-m", "botctl", "console", "--no-browser"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 3 and "botctl init" in r.stderr and "Traceback" not in r.stderr
    running = start_console()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "botctl", "console", "--no-browser", "--port", str(running.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 4 and "--port" in r.stderr and "Traceback" not in r.stderr
    finally:
        stop(running)


def test_cli_start_up_does_not_import_the_web_stack():
    code = (
        "import sys, botctl.cli.main, botctl.cli.console_cmd; "
        "print(sorted(m for m in ('jinja2', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    assert out == "[]"


def test_opens_the_browser_with_the_one_time_link(populated, tmp_path):
    """Without --no-browser the link goes to the browser (here $BROWSER: a script that notes what it got)."""
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" > {opened}\n")
    script.chmod(0o755)
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "console"],
        env={**os.environ, "BROWSER": str(script)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (opened.exists() and opened.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The browser gets a file only this user can read, which sends it on to the link: never the token on
        # a command line, readable by every local user (tests/test_hostile_session.py).
        given = opened.read_text().strip()
        assert given.startswith("file://") and "token" not in given, given
        page = Path(urlsplit(given).path)
        assert page.stat().st_mode & 0o777 == 0o600
        url = re.search(r'url=([^"]+)"', page.read_text()).group(1)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login\?token=[A-Za-z0-9_-]{43}", url), url
        while True:
            try:
                r = httpx.get(url, follow_redirects=False)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 303 and "HttpOnly" in r.headers["set-cookie"]
        assert not page.exists()  # removed once the link is spent
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_head_request_does_not_spend_the_link(console):
    r = httpx.head(console.login_url)
    assert r.status_code == 405 and "set-cookie" not in r.headers
    assert console.login().startswith("botctl_console_")  # the GET that follows still works


def test_without_the_master_key_records_show_and_the_verdict_says_why(populated):
    key_file = populated.path / "master.key"
    assert key_file.exists()
    aside = populated.path.parent / "master.key.aside"
    key_file.rename(aside)
    running = start_console()
    try:
        cookie = running.login()
        assert running.get("/", cookie).status_code == 200
        v = running.get("/api/verify", cookie).json()
        assert v["state"] == "unavailable" and v["ok"] is None and v["problem"]
        assert "Cannot check the chain here" in running.get("/verify", cookie).text
    finally:
        stop(running)
        aside.rename(key_file)
