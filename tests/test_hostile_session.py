"""Hostile review of this session's surfaces (MCP confirmations, audit sinks and alert webhooks, the widget's
votes, knowledge feedback in a terminal): each test is an attack as it was reproduced, kept so it stays fixed;
its docstring says what was wrong."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from botctl.audit import destinations

# -- audit sinks and alert webhooks: a malicious or broken receiver ------------------------------------------


class _Flood:
    """A loopback 'webhook' that answers 200 and then sends a body of `total` bytes as fast as it is read,
    counting what the client actually took."""

    def __init__(self, total: int) -> None:
        self.total, self.sent = total, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % self.total
            )
            chunk = b"x" * 65536
            try:
                while self.sent < self.total:
                    self.sent += conn.send(chunk[: self.total - self.sent])
            except OSError:
                pass  # the client hung up: what we measure

    def close(self) -> None:
        self.thread.join(10)
        self.sock.close()


def test_a_webhook_answering_with_an_endless_body_is_not_read(monkeypatch):
    """Finding: destinations.post read the receiver's whole answer into memory (httpx's client.post), so an
    alert webhook or sink answering 200 with gigabytes (or a body that never ends) grew the provider's
    memory on its shipping thread without bound. The status is all botctl needs: the body is never read."""
    monkeypatch.setenv("RT_HOOK_SECRET", "s3cret-for-the-test")
    flood = _Flood(256 * 1024 * 1024)
    try:
        destinations.post(flood.url, b'{"x":1}\n', secret_env="RT_HOOK_SECRET", headers={})
    finally:
        flood.close()
    assert flood.sent < 32 * 1024 * 1024, flood.sent  # socket buffers at most, not the 256 MiB offered


# -- the MCP endpoint and the visitor's confirmation, against a real daemon ---------------------------------


@pytest.fixture(scope="module")
def d(sandbox_server, tmp_path_factory):
    from cluster_kit import free_port, sh
    from test_daemon import _setup_home
    from test_mcp import _connect

    sandbox_server.reset()
    dm = _setup_home(
        tmp_path_factory.mktemp("hostile-session"),
        sandbox_server,
        port=free_port(),
        daemon_args=("--ip-rate", "0", "--visitor-rate", "0"),
    )
    _connect(dm, sandbox_server, "calcom")
    other = json.loads(sh(dm.env, "identity", "rotate", "-w", "other", "--json").stdout)
    dm.other_secret, dm.other_kid = other["secret"], other["kid"]
    dm.mcp_url = f"{dm.url}/v1/workspaces/acme/mcp"
    yield dm
    sh(dm.env, "daemon", "stop", check=False)


def _rpc(d, message, token=None, **headers):
    h = {"Content-Type": "application/json", **headers}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return d.http.post("/v1/workspaces/acme/mcp", content=json.dumps(message), headers=h)


def _vendor_writes(d, since):
    return [
        r for r in d.sandbox.stats()["requests"][since:] if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
    ]


@pytest.mark.slow
def test_notifications_and_batches_never_run_a_tool(d):
    """A tools/call sent as a notification (no id) or inside a batch: 202 / 400, and nothing reaches the vendor
    or the audit's action records (reviewed: sound)."""
    from test_mcp import CANCEL, _ada_booking, _records

    booking = _ada_booking(d)[0]
    before, runs = len(d.sandbox.stats()["requests"]), len(_records(d, event="action.run"))
    call = {
        "jsonrpc": "2.0",
        "method": "tools/call",
        "params": {"name": CANCEL, "arguments": {"booking_id": booking}},
    }
    assert _rpc(d, call, d.token(botctl_use="mcp")).status_code == 202
    r = _rpc(d, [{**call, "id": 1}, {**call, "id": 2}], d.token(botctl_use="mcp"))
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600
    for bad_id in (None, 1.5, True, {"x": 1}, [1], 2**60, "x" * 201):
        r = _rpc(d, {**call, "id": bad_id}, d.token(botctl_use="mcp"))
        assert r.status_code == 400, (bad_id, r.text)
    assert not _vendor_writes(d, before)
    assert len(_records(d, event="action.run")) == runs


@pytest.mark.slow
def test_foreign_origin_is_refused_on_the_mcp_route_and_confirmations(d):
    """MCP's DNS-rebinding rule: a present Origin that is not the workspace's is 403, with no CORS grant, on
    the transport and on the confirmation routes, preflights included (reviewed: sound)."""
    from test_daemon import SITE_ORIGIN

    for origin in (
        "https://evil.test",
        "null",
        SITE_ORIGIN + "/",
        SITE_ORIGIN.upper(),
        SITE_ORIGIN + ".evil.test",
    ):
        r = _rpc(d, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, Origin=origin)
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers, origin
        r = d.http.options(
            "/v1/workspaces/acme/confirmations/cnf_x",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers, origin
    r = _rpc(d, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, Origin=SITE_ORIGIN)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SITE_ORIGIN


@pytest.mark.slow
def test_confirming_needs_a_fresh_token_of_the_same_visitor_in_the_same_workspace(d):
    """TOCTOU between the ask and the answer: the token presented at the answer is verified again; an expired
    one, the same sub with another email, the same visitor's token of another workspace (on either URL) are
    refused and nothing is sent (reviewed: sound)."""
    import time

    import jwt

    from test_mcp import _ada_booking, _answer, _ask_cancel, _bookings_status

    booking = _ada_booking(d)[2]
    cid = _ask_cancel(d, d.token(botctl_use="mcp"), booking)["confirmation_id"]
    before = len(d.sandbox.stats()["requests"])
    now = int(time.time())
    expired = d.token(iat=now - 900, exp=now - 120)
    assert _answer(d, cid, expired).json()["error"]["code"] == "invalid_identity"
    assert _answer(d, cid, d.token(email="ada@evil.test")).json()["error"]["code"] == "not_found"
    foreign = jwt.encode(
        {"sub": "u-ada", "email": "ada@example.com", "aud": "other", "iat": now, "exp": now + 300},
        d.other_secret,
        algorithm="HS256",
        headers={"kid": d.other_kid},
    )
    assert _answer(d, cid, foreign).json()["error"]["code"] == "invalid_identity"
    assert _answer(d, cid, foreign, ws="other").json()["error"]["code"] == "not_found"
    assert not _vendor_writes(d, before) and not _bookings_status(d, booking)
    assert _answer(d, cid, d.token(), "cancel").json()["status"] == "cancelled"


@pytest.mark.slow
def test_a_plan_or_connection_changed_after_the_ask_is_checked_again_at_the_answer(d):
    """The confirmed params run through every check again: a workspace moved to the free plan, or a vendor
    disconnected, after the ask refuses the run at the answer (reviewed: sound)."""
    from cluster_kit import sh
    from test_mcp import _ada_booking, _answer, _ask_cancel, _bookings_status

    booking = _ada_booking(d)[2]
    cid = _ask_cancel(d, d.token(botctl_use="mcp"), booking)["confirmation_id"]
    sh(d.env, "workspace", "set-plan", "acme", "free")
    try:
        time.sleep(5.2)  # the edge caches a workspace's config for 5 s
        before = len(d.sandbox.stats()["requests"])
        r = _answer(d, cid, d.token())
        assert r.json()["error"]["code"] == "plan_required", r.text
        assert not _vendor_writes(d, before) and not _bookings_status(d, booking)
    finally:
        sh(d.env, "workspace", "set-plan", "acme", "pro")


@pytest.mark.slow
def test_the_bot_cannot_answer_its_own_confirmation(d):
    """Finding (fixed): the bot's backend held the visitor's identity token (the widget's) and the
    confirmation id from the tool result, and POST /confirmations/{id} accepted that same token, so a malicious
    MCP client confirmed its own ask. Now the site signs the bot its own token (`botctl_use: "mcp"`): the MCP
    endpoint takes only that one, and the confirmation (and the widget's action API, which would skip the
    confirmation altogether) refuses it, audited with the reason."""
    from test_mcp import _ada_booking, _answer, _ask_cancel, _bookings_status, _records

    booking = _ada_booking(d)[-1]
    bot_token = d.token(jti="bot-turn-1", botctl_use="mcp")
    cid = _ask_cancel(d, bot_token, booking)["confirmation_id"]
    for decision in ("confirm", "cancel"):
        r = _answer(d, cid, bot_token, decision)  # the bot, not the visitor, answers
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_identity", r.text
        rec = _records(d, r.headers["x-request-id"], "action.confirmation")
        assert len(rec) == 1 and (rec[0]["outcome"], rec[0]["reason"]) == ("denied", "invalid_identity"), rec
        assert rec[0]["detail"]["identity_reason"] == "wrong_use" and "sub" not in rec[0]["actor"], rec[0]
    r = d.http.get(
        f"/v1/workspaces/acme/confirmations/{cid}", headers={"Authorization": f"Bearer {bot_token}"}
    )
    assert r.status_code == 401  # nor read it the way the widget does
    r = d.act(
        "calcom.cancel_my_booking", {"booking_id": booking, "reason": "no need to ask"}, token=bot_token
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_identity", r.text
    assert not _bookings_status(d, booking)
    # The visitor's own (widget) token still answers it.
    r = _answer(d, cid, d.token())
    assert r.status_code == 200 and _bookings_status(d, booking), r.text


def test_a_webhook_answering_a_byte_at_a_time_is_cut_at_the_deadline(monkeypatch):
    """Finding: each read had a 10 s timeout but the exchange none, so a receiver sending its answer's head a
    byte every few seconds held the shipper's one thread for hours (h11 gives up after 16 KiB of head):
    every other sink and every alert (audit.chain_broken included) waited behind it."""
    monkeypatch.setenv("RT_HOOK_SECRET", "s3cret-for-the-test")
    monkeypatch.setattr(destinations, "DEADLINE_S", 1.0, raising=False)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    stop = threading.Event()

    def drip() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"X")
                except OSError:
                    return
                stop.wait(0.2)

    threading.Thread(target=drip, daemon=True).start()
    outcome: list = []

    def deliver() -> None:
        try:
            destinations.post(
                f"http://127.0.0.1:{srv.getsockname()[1]}/hook",
                b"{}\n",
                secret_env="RT_HOOK_SECRET",
                headers={},
            )
            outcome.append("delivered")
        except destinations.DeliveryFailed as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=deliver, daemon=True)
    worker.start()
    worker.join(60)  # a liveness bound, far above the deadline: before the fix this waited for hours
    stop.set()
    srv.close()
    assert not worker.is_alive() and outcome and "no answer within" in outcome[0], outcome


@pytest.mark.slow
def test_a_refused_token_on_the_waiting_list_is_audited(d):
    """Finding: GET /confirmations answered a forged or foreign token 401 without a record, while the action API
    and the MCP endpoint audit every refused token: a silent oracle to try forged tokens against (which one
    verifies?) before using one where it is seen. Now each refusal is `mcp.refused` with its reason."""
    import jwt

    from test_mcp import _records

    now = int(time.time())
    forged = jwt.encode(
        {"sub": "u-ada", "email": "ada@example.com", "aud": "acme", "iat": now, "exp": now + 300},
        "not-the-workspace-secret-0123456789abcdef",
        algorithm="HS256",
        headers={"kid": d.kid},
    )
    for token, reason in ((forged, "bad_signature"), (d.token(iat=now - 900, exp=now - 120), "expired")):
        r = d.http.get("/v1/workspaces/acme/confirmations", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_identity"
        rec = _records(d, r.headers["x-request-id"])
        assert [(x["event"], x["outcome"], x["reason"]) for x in rec] == [
            ("mcp.refused", "denied", "invalid_identity")
        ]
        assert rec[0]["detail"]["identity_reason"] == reason, rec
    # No token at all is no attack: refused, nothing recorded.
    r = d.http.get("/v1/workspaces/acme/confirmations")
    assert r.status_code == 401 and not _records(d, r.headers["x-request-id"])


# -- knowledge feedback: a visitor's question on the operator's terminal --------------------------------------


def test_a_visitors_question_reaches_the_operators_terminal_inert(app, cli):
    """A visitor can ask anything and vote it down, so `knowledge feedback` prints visitor-chosen text: escape
    sequences (an OSC 52 clipboard write, a screen clear, a CR overwriting the row), bidi overrides and a tab
    that would shift the TSV columns arrive as visible escapes (reviewed: sound)."""
    from botctl import feedback, workspaces

    assert cli("workspace", "create", "acme").code == 0
    ws = workspaces.get(app.vault.conn, "acme")
    key = feedback.feedback_key(app.vault.audit_key())
    question = "refund?\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rOK\tyes\u202egnp.exe\x9b31m"
    aid = feedback.answer_id(key, ws.id, question, "Sorry, I don't know.", False)
    feedback.record(app.vault.conn, key, ws, aid, "down", question, "Sorry, I don't know.", None)
    r = cli("knowledge", "feedback", "-w", "acme")
    assert r.code == 0, r.err
    rows = [line for line in r.out.splitlines() if "refund?" in line]
    assert len(rows) == 1 and rows[0].count("\t") == 4, r.out  # five columns, whatever the question holds
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in r.out, repr(raw)
    assert "\\x1b]52" in rows[0] and "\\u202e" in rows[0]
    out = cli("knowledge", "feedback", "-w", "acme", "--json").out
    assert json.loads(out)[0]["question"] == question and "\x1b" not in out and "\u202e" not in out


# -- botctl mcp serve --stdio: the agent's arguments on the operator's terminal -------------------------------


def test_the_agents_arguments_cannot_rewrite_the_question_on_the_operators_terminal(tmp_path):
    """Finding: the stdio server asked "Run it? [y/N]" on /dev/tty with the summary written raw, so an agent
    (or a prompt injection in what it read) could put escape sequences or line breaks in a parameter: move
    the cursor up and clear the lines that said what would run, print a harmless-looking summary in their
    place, or write the operator's clipboard (OSC 52). Each value now arrives as visible escapes, one line
    per parameter."""
    import asyncio

    from botctl.connectors import registry
    from botctl.connectors.base import ActionError, Visitor
    from botctl.mcp.stdio import terminal_hold

    class Ws:
        name = "acme"

    tty = tmp_path / "tty"
    tty.write_text("")
    _, spec = registry.find_action("calcom.cancel_my_booking")
    params = {
        "booking_id": "bkAda1",
        "reason": "x\x1b[3A\x1b[J\rbotctl mcp: the agent asks to look up slots\n  Booking id: none\x1b]52;c;eA==\x07",
    }
    hold = terminal_hold(Visitor(sub="u-ada", email="ada@example.com"), yes=False, tty_path=str(tty))
    with pytest.raises(ActionError) as refused:
        asyncio.run(hold(Ws(), "calcom.cancel_my_booking", spec, params))
    assert refused.value.code == "confirmation_refused"  # nobody typed y
    shown = tty.read_text()
    for raw in ("\x1b", "\x07", "\r"):
        assert raw not in shown, repr(raw)
    lines = [line for line in shown.splitlines() if line.strip()]
    assert [line.split(":")[0].strip() for line in lines[1:-1]] == [
        "Cancel one of your bookings (Cal.com).",
        "Booking id",
        "Reason",
    ], lines
    assert "\\x1b[3A" in shown and "\\n" in shown


def test_deep_json_from_the_agent_is_an_answer_not_a_crash(cli):
    """Finding: the stdio transport has no nesting cap like the edge's (32), and json.loads raises
    RecursionError (not ValueError) on a deep line; arguments a few hundred levels deep passed the parser and
    broke the params walk. Either ended the server with a traceback; now each is a JSON-RPC error and the
    next message is answered."""
    import subprocess
    import sys

    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    deep_line = "[" * 200_000 + "]" * 200_000
    nested: object = "x"
    for _ in range(900):
        nested = {"a": nested}
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "calcom__cancel_my_booking", "arguments": {"booking_id": nested}},
    }
    lines = [deep_line, json.dumps(call), json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"})]
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", "mcp", "serve", "--stdio", "-w", "acme"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [a.get("id") for a in answers] == [None, 2, 3], answers
    assert answers[0]["error"]["code"] == -32700 and answers[2]["result"] == {}
    assert "error" in answers[1] or answers[1]["result"]["isError"] is True


@pytest.mark.slow
def test_a_confirmation_id_in_the_path_reaches_the_audit_only_escaped(d):
    """Finding: the provider wrote the id from the URL into action.confirmation's detail as given whenever it
    began with cnf_, so a visitor could put ESC, CR or a bidi override (percent-encoded in the path) into the
    audit, where action names and request ids of the same shape are refused and kept escaped. Now only an id
    of the shape botctl issues is recorded as confirmation_id; anything else as an escaped requested_id."""
    from test_mcp import _records

    r = d.http.post(
        "/v1/workspaces/acme/confirmations/cnf_%1B%5B2J%0D%E2%80%AEevil",
        json={"decision": "confirm"},
        headers={"Authorization": f"Bearer {d.token()}"},
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    rec = _records(d, r.headers["x-request-id"])
    assert len(rec) == 1 and rec[0]["event"] == "action.confirmation", rec
    text = json.dumps(rec[0], ensure_ascii=False)
    for raw in ("\x1b", "\r", "\u202e"):
        assert raw not in text, repr(raw)
    assert "confirmation_id" not in rec[0]["detail"] and "cnf_" in rec[0]["detail"]["requested_id"]


@pytest.mark.parametrize("var", ["BOTCTL_MASTER_KEY", "PGPASSWORD", "BOTCTL_LLM_API_KEY"])
def test_a_webhook_is_never_signed_with_botctls_own_secrets(cli, var):
    """Finding: --secret-env took any variable name, so `--secret-env BOTCTL_MASTER_KEY` made the master key
    (or the database password) the webhook's signing secret: whoever verifies the signatures at the receiver
    must then hold it. Refused like a connection's secret naming one of them (exit 2, nothing added)."""
    assert cli("workspace", "create", "acme").code == 0
    r = cli("alert", "add", "https://ops.example/hook", "--secret-env", var)
    assert r.code == 2 and var in r.err, r.err
    r = cli("audit", "sink", "add", "webhook", "https://collector.example/botctl", "--secret-env", var)
    assert r.code == 2 and var in r.err, r.err
    assert cli("alert", "list", "--json").json() == [] and cli("audit", "sink", "list", "--json").json() == []


# -- the operator console ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_consoles_live_poll_refuses_digits_int_cannot_read(cli):
    """Finding: /api/records?after= was checked with str.isdigit(), which takes "²" and other Unicode digits that
    int() refuses: a 500 and a traceback in the console's log instead of the 400 every other bad value gets.
    (Reviewed and sound: Host and session checks, CSP and framing headers, /static traversal, autoescaped
    visitor text; tests/test_console.py holds those.)"""
    from test_console import start_console, stop

    assert cli("workspace", "create", "acme").code == 0
    running = start_console()
    try:
        cookie = running.login()
        for after in ("%C2%B2", "%D9%A3", "1" * 40, "-1", ""):
            r = running.get(f"/api/records?after={after}", cookie)
            assert r.status_code == 400 and r.json() == {"problem": "after must be a record number"}, (
                after,
                r.text,
            )
        assert running.get("/api/records?after=0", cookie).status_code == 200
    finally:
        stop(running)


@pytest.mark.slow
def test_a_refused_token_on_a_vote_is_audited(d):
    """Finding: POST /feedback answered a forged token 401 without a record (chat, actions and MCP record every
    refused token): the same silent oracle as the waiting list. Now `feedback.refused` with the reason."""
    import jwt

    from test_mcp import _records

    now = int(time.time())
    forged = jwt.encode(
        {"sub": "u-ada", "aud": "acme", "iat": now, "exp": now + 300},
        "not-the-workspace-secret-0123456789abcdef",
        algorithm="HS256",
        headers={"kid": d.kid},
    )
    r = d.http.post(
        "/v1/workspaces/acme/feedback",
        json={"answer_id": "a1.1.0.x", "vote": "up", "question": "q", "answer": "a"},
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_identity"
    rec = _records(d, r.headers["x-request-id"])
    assert [(x["event"], x["outcome"], x["reason"]) for x in rec] == [
        ("feedback.refused", "denied", "invalid_identity")
    ]
    assert rec[0]["detail"]["identity_reason"] == "bad_signature"
