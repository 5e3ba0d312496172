"""`botctl demo`: the whole product in one command, no accounts, no network beyond loopback.

Starts the vendor sandbox, creates a `pro` workspace in a throw-away home, connects tools, signs
visitors in like a real site would, starts the daemon, and plays a scripted session through the
edge's HTTP API, step by step. `--keep` leaves the daemon and sandbox running.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, *, keep: bool, port: int | None, out: Any) -> None:
        self.keep = keep
        self.out = out
        self.tmp = Path(tempfile.mkdtemp(prefix="botctl-demo-"))
        # The caller's BOTCTL_MASTER_KEY if set (so a `--keep` home stays usable from their shell), else a
        # fresh key that lives only in this process and the daemon it starts.
        self.own_key = bool(os.environ.get("BOTCTL_MASTER_KEY"))
        self.env = {
            **os.environ,
            "BOTCTL_HOME": str(self.tmp / "home"),
            "BOTCTL_NO_KEYRING": "1",
            "NO_COLOR": "1",
            "BOTCTL_MASTER_KEY": os.environ.get("BOTCTL_MASTER_KEY")
            or base64.b64encode(os.urandom(32)).decode(),
        }
        self.env.pop("CI", None)
        self.port = port or _free_port()
        self.sandbox_port = _free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.edge = f"http://127.0.0.1:{self.port}"
        self.sandbox_proc: subprocess.Popen | None = None
        self.failures: list[str] = []

    # -- output --------------------------------------------------------------------------------------

    def step(self, n: int | str, title: str) -> None:
        self.out.rule(f"[bold]{n}. {title}")

    def note(self, text: str) -> None:
        self.out.print(f"[dim]{text}[/dim]")

    def show_http(self, method: str, path: str, resp: Any, expect: int | None = None) -> None:
        ok = expect is None or resp.status_code == expect
        color = "green" if resp.status_code < 400 else "yellow"
        mark = "" if ok else "  [red]UNEXPECTED[/red]"
        self.out.print(f"[bold]{method}[/bold] {path} → [{color}]{resp.status_code}[/{color}]{mark}")
        body = resp.json()
        if "error" in body:
            self.out.print(f"  error: [yellow]{body['error']['code']}[/yellow] — {body['error']['message']}")
        else:
            text = json.dumps(body.get("result", body), ensure_ascii=False)
            self.out.print(
                "  " + (text[:220] + " …" if len(text) > 220 else text), markup=False, highlight=False
            )
        if not ok:
            self.failures.append(f"{method} {path}: {resp.status_code} (expected {expect})")

    # -- plumbing ------------------------------------------------------------------------------------

    def botctl(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "botctl", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"botctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start_sandbox(self) -> None:
        import httpx

        self.sandbox_proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "botctl",
                "sandbox",
                "serve",
                "--port",
                str(self.sandbox_port),
                "--quiet",
                "--auto-approve",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.sandbox_url + "/_sandbox/stats", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the sandbox did not start")

    def oauth_connect(self, connector: str, *extra: str) -> None:
        url = oauth_connect_via_sandbox(self.env, self.sandbox_url, connector, "acme", *extra)
        self.note(f"browser → {url.split('?')[0]}?… (consent approved) → http://127.0.0.1:<port>/callback")

    def token(
        self,
        secret: str,
        kid: str,
        *,
        sub: str,
        email: str,
        name: str,
        aud: str = "acme",
        use: str | None = None,
    ) -> str:
        """As the site signs it: for the widget; `use="mcp"` the one it gives its bot (claim botctl_use)."""
        import jwt

        now = int(time.time())
        claims = {"sub": sub, "email": email, "name": name, "aud": aud, "iat": now, "exp": now + 600}
        if use:
            claims["botctl_use"] = use
        return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})

    # -- the script ----------------------------------------------------------------------------------

    def run(self) -> int:
        import httpx

        started = time.monotonic()
        self.step(0, "Set up: sandbox vendors, a pro workspace, connected tools, the daemon")
        self.start_sandbox()
        creds = httpx.get(self.sandbox_url + "/_sandbox/credentials").json()
        self.botctl(
            "workspace",
            "create",
            "acme",
            "--plan",
            "pro",
            "--display-name",
            "Acme Store",
            "--origin",
            "http://127.0.0.1:3000",
        )
        self.botctl("workspace", "create", "globex", "--plan", "free")
        # Every connector, as the sandbox says to reach its seeded tenant: API keys on stdin; OAuth tools
        # by authorization code + PKCE through botctl's loopback listener.
        from botctl.connectors import registry

        connectors = registry.all_connectors()
        for c in connectors:
            plan = creds[c.name]["connect"]
            settings = [arg for k, v in plan["config"].items() for arg in ("--config", f"{k}={v}")]
            if c.auth == "oauth":
                self.oauth_connect(c.name, *settings)
                continue
            secret = "\n".join(plan["credential"][f] for f in c.key_fields)
            self.botctl(
                "connect",
                c.name,
                "-w",
                "acme",
                "--sandbox",
                self.sandbox_url,
                *settings,
                "--api-key-stdin",
                input=secret + "\n",
            )
        self.botctl(
            "connect",
            "stripe",
            "-w",
            "globex",
            "--sandbox",
            self.sandbox_url,
            "--api-key-stdin",
            input=creds["stripe"]["api_key"] + "\n",
        )
        self.botctl("knowledge", "add", "-w", "acme", str(Path(__file__).parent / "demo_kb"))
        acme = json.loads(self.botctl("identity", "rotate", "-w", "acme", "--json"))
        globex = json.loads(self.botctl("identity", "rotate", "-w", "globex", "--json"))
        self.botctl("daemon", "start", "--port", str(self.port))
        by_oauth = sum(c.auth == "oauth" for c in connectors)
        self.note(
            f"home {self.env['BOTCTL_HOME']}; sandbox {self.sandbox_url}; edge {self.edge}; "
            f"{len(connectors)} tools connected to workspace acme ({len(connectors) - by_oauth} by API key, "
            f"{by_oauth} by OAuth; all encrypted in vault.db); a small help center loaded as knowledge"
        )
        http = httpx.Client(base_url=self.edge, timeout=30)

        def act(
            action: str,
            params: dict | None = None,
            token: str | None = None,
            ws: str = "acme",
            expect: int | None = None,
        ) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = http.post(
                f"/v1/workspaces/{ws}/actions/{action}", json={"params": params or {}}, headers=headers
            )
            self.show_http("POST", f"/v1/workspaces/{ws}/actions/{action}", r, expect)
            return r

        self.step(1, "An anonymous visitor asks a question: answered from the store's own help pages, cited")
        r = http.get("/v1/workspaces/acme/widget-config")
        self.show_http("GET", "/v1/workspaces/acme/widget-config", r, 200)
        r = http.post("/v1/workspaces/acme/chat", json={"message": "How long does standard shipping take?"})
        self.out.print(f"[bold]POST[/bold] /v1/workspaces/acme/chat → {r.status_code}")
        answer = r.json()
        self.out.print("  " + answer.get("answer", "")[:300], markup=False, highlight=False)
        for c in answer.get("citations", [])[:2]:
            self.out.print(f"  cited: {c['document']} — {c['section']}", markup=False, highlight=False)
        if r.status_code != 200 or not answer.get("grounded"):
            self.failures.append("the knowledge question was not answered with a citation")
        act("calendly.available_times", expect=200)

        self.step(2, "The anonymous visitor asks for their orders: refused, no identity")
        act("shopify.list_my_orders", expect=401)

        self.step(3, "Ada signs in on the store; the store's backend signs a token; the widget acts for her")
        ada = self.token(
            acme["secret"], acme["kid"], sub="site-user-ada", email="ada@example.com", name="Ada Lovelace"
        )
        self.note("token = jwt.encode({sub, email, name, aud: 'acme', iat, exp}, SECRET, 'HS256', kid=...)")
        act("shopify.list_my_orders", token=ada, expect=200)
        act(
            "zendesk.create_ticket",
            {"subject": "Where is order #1007?", "description": "It has not arrived yet."},
            token=ada,
            expect=200,
        )
        slots = httpx.get(self.sandbox_url + "/_sandbox/seed").json()
        act("stripe.list_my_invoices", token=ada, expect=200)
        cal = creds["calcom"]
        event_type = httpx.get(
            self.sandbox_url + "/calcom/v2/event-types",
            headers={
                "Authorization": f"Bearer {cal['api_key']}",
                "cal-api-version": cal["api_versions"]["event_types"],
            },
        ).json()["data"][0]["id"]
        start = _first_slot(
            act("calcom.available_slots", {"event_type_id": event_type}, token=ada, expect=200)
        )
        if start:
            act("calcom.book_meeting", {"event_type_id": event_type, "start": start}, token=ada, expect=200)

        self.step(4, "Ada asks for Grace's order by id: to her it does not exist (the audit says forbidden)")
        grace_order = slots["shopify"]["grace@example.com"]["orders"][0]
        act("shopify.get_my_order", {"order_id": grace_order}, token=ada, expect=404)

        self.step(5, "A token signed for another workspace, and a free-plan workspace")
        other = self.token(
            globex["secret"],
            globex["kid"],
            sub="site-user-ada",
            email="ada@example.com",
            name="Ada Lovelace",
            aud="globex",
        )
        act("shopify.list_my_orders", token=other, expect=401)
        act("stripe.list_my_invoices", token=other, ws="globex", expect=403)

        self.step(6, "Zendesk's access token expires; the provider refreshes it; Ada notices nothing")
        before = httpx.get(self.sandbox_url + "/_sandbox/stats").json()["token_grants"].get("zendesk", {})
        httpx.post(self.sandbox_url + "/_sandbox/oauth/expire", json={"vendor": "zendesk"})
        self.note("the sandbox expired every Zendesk access token it issued")
        act("zendesk.list_my_tickets", token=ada, expect=200)
        after = httpx.get(self.sandbox_url + "/_sandbox/stats").json()["token_grants"].get("zendesk", {})
        refreshed = after.get("refresh_token", 0) - before.get("refresh_token", 0)
        self.note(
            f"token endpoint: {refreshed} refresh_token grant(s); the new refresh token was stored "
            "(encrypted) before the new access token was used"
        )
        if refreshed != 1:
            self.failures.append(f"expected one refresh, saw {refreshed}")

        self.step(
            7, "A bot over MCP: Ada's tools; it asks to cancel her booking; only Ada's confirmation runs it"
        )
        from botctl import demo_mcp

        ada_bot = self.token(
            acme["secret"],
            acme["kid"],
            sub="site-user-ada",
            email="ada@example.com",
            name="Ada Lovelace",
            use="mcp",
        )
        demo_mcp.run(self, http, ada, ada_bot, slots["calcom"]["ada@example.com"]["bookings"][0])

        self.step(8, "The audit trail of all of it, verified")
        out = self.botctl("audit", "--json", "-n", "200")
        for line in out.splitlines():
            rec = json.loads(line)
            if not (rec["event"] == "action.run" or rec["event"].startswith("connection.refresh")):
                continue
            who = rec["actor"].get("email") or (
                "system" if rec["actor"].get("type") == "system" else "anonymous"
            )
            self.out.print(
                f"  #{rec['seq']:<3} {rec['workspace']:<7} {who:<18} {rec['action'] or rec['event']:<28} "
                f"{rec['outcome']:<7} {rec['reason'] or ''}",
                markup=False,
                highlight=False,
            )
        verdict = json.loads(self.botctl("audit", "verify", "--json"))
        self.out.print(
            f"audit verify: [green]intact[/green], {verdict['records']} records"
            if verdict["ok"]
            else f"audit verify: [red]BROKEN[/red] at {verdict['first_bad_seq']}"
        )
        if not verdict["ok"]:
            self.failures.append("audit verify failed")
        elapsed = time.monotonic() - started
        self.out.rule()
        if self.keep:
            self.out.print(
                f"Still running: edge {self.edge}  (widget: {self.edge}/widget.js — see examples/site/ for "
                f"a page that embeds it), sandbox "
                f"{self.sandbox_url}\n  export BOTCTL_HOME={self.env['BOTCTL_HOME']} "
                f"BOTCTL_MASTER_KEY={'<yours>' if self.own_key else '<printed nowhere: set one before the demo to reuse the home>'}\n  botctl daemon status; botctl audit -f; botctl console  (the timeline, connections, activity in a browser)\n"
                f"  stop with: BOTCTL_HOME={self.env['BOTCTL_HOME']} botctl daemon stop; "
                f"kill {self.sandbox_proc.pid if self.sandbox_proc else ''}"
            )
        self.out.print(
            f"demo finished in {elapsed:.1f}s"
            + (f" with {len(self.failures)} unexpected result(s)" if self.failures else "")
        )
        return 1 if self.failures else 0

    def cleanup(self) -> None:
        if self.keep:
            return
        subprocess.run([sys.executable, "-m", "botctl", "daemon", "stop"], env=self.env, capture_output=True)
        if self.sandbox_proc is not None:
            self.sandbox_proc.terminate()
            try:
                self.sandbox_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sandbox_proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def oauth_connect_via_sandbox(
    env: dict[str, str], sandbox_url: str, connector: str, workspace: str, *extra: str
) -> str:
    """`botctl connect X --no-browser` as a person would run it, against a sandbox serving with
    `--auto-approve`: open the printed URL (the sandbox approves consent), the redirect lands on botctl's
    loopback listener, and botctl exchanges the code (PKCE) and stores the tokens. Returns the
    authorization URL. Used by the demo and the benchmarks."""
    import httpx

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "botctl",
            "connect",
            connector,
            "-w",
            workspace,
            "--sandbox",
            sandbox_url,
            "--no-browser",
            *extra,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line:
            break
        if line.strip().startswith("http"):
            url = line.strip()
    if url is None:
        proc.kill()
        raise RuntimeError(f"botctl connect {connector} printed no authorization URL")
    httpx.get(url, follow_redirects=True, timeout=30)
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"botctl connect {connector} failed: {err.strip()}")
    return url


def _first_slot(resp: Any) -> str | None:
    if resp.status_code != 200:
        return None
    result = resp.json().get("result") or {}
    slots = result.get("slots") if isinstance(result, dict) else None
    if isinstance(slots, dict):
        for day in slots.values():
            for s in day:
                return s.get("start") if isinstance(s, dict) else s
    if isinstance(slots, list) and slots:
        s = slots[0]
        return s.get("start") if isinstance(s, dict) else s
    return None


def run(*, keep: bool = False, port: int | None = None) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=140)
    demo = Demo(keep=keep, port=port, out=console)
    try:
        return demo.run()
    finally:
        demo.cleanup()
