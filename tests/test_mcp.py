"""The workspace's actions over MCP (issue #18), driven by the official MCP Python SDK's client (`mcp`), not by
botctl's own code: a real daemon (supervisor, provider, edge), real HTTP, the sandbox as vendors.

Tools are bound to the verified visitor; no write runs on the bot's word: it returns confirmation_required,
the visitor answers through the edge with their own token, and the audit shows request, confirmation and
outcome."""

import asyncio
import json
import sqlite3
import time

import httpx
import pytest

from cluster_kit import free_port, sh
from test_daemon import SITE_ORIGIN, _setup_home

pytestmark = pytest.mark.slow

CANCEL = "calcom__cancel_my_booking"


def _connect(dm, sandbox, name, ws="acme"):
    plan = sandbox.credentials()[name]["connect"]
    settings = [arg for k, v in plan["config"].items() for arg in ("--config", f"{k}={v}")]
    flag = "--access-token-stdin" if "access_token" in plan["credential"] else "--api-key-stdin"
    sh(
        dm.env,
        "connect",
        name,
        "-w",
        ws,
        "--sandbox",
        sandbox.url,
        *settings,
        flag,
        input="".join(v + "\n" for v in plan["credential"].values()),
    )


@pytest.fixture(scope="module")
def d(sandbox_server, tmp_path_factory):
    sandbox_server.reset()
    dm = _setup_home(
        tmp_path_factory.mktemp("mcp"),
        sandbox_server,
        port=free_port(),
        daemon_args=("--ip-rate", "0", "--visitor-rate", "0"),
    )
    for name in ("calcom", "calendly"):
        _connect(dm, sandbox_server, name)
    other = json.loads(sh(dm.env, "identity", "rotate", "-w", "other", "--json").stdout)
    dm.other_secret, dm.other_kid = other["secret"], other["kid"]
    dm.mcp_url = f"{dm.url}/v1/workspaces/acme/mcp"
    yield dm
    sh(dm.env, "daemon", "stop", check=False)


def grace(d, use=None):
    return d.token(sub="u-grace", email="grace@example.com", name="Grace Hopper", botctl_use=use)


def bot(d, **claims):
    """Ada's token as the site signs it for its bot's MCP client (`botctl_use: "mcp"`); `d.token()` is the
    widget's, the only one that answers a confirmation."""
    return d.token(botctl_use="mcp", **claims)


def foreign(d):
    import jwt

    now = int(time.time())
    return jwt.encode(
        {
            "sub": "u-ada",
            "email": "ada@example.com",
            "aud": "other",
            "iat": now,
            "exp": now + 300,
            "botctl_use": "mcp",
        },
        d.other_secret,
        algorithm="HS256",
        headers={"kid": d.other_kid},
    )


async def _session(url, token, work):
    """Run `work(session)` in an initialized session of the SDK's own client."""
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        return init, await work(session)


def run(url, token, work):
    return asyncio.run(_session(url, token, work))


async def _list(session):
    return (await session.list_tools()).tools


def _names(tools):
    return {t.name for t in tools}


def _records(d, rid=None, event=None):
    with sqlite3.connect(f"file:{d.home / 'audit.db'}?mode=ro", uri=True) as conn:
        rows = [json.loads(b) for (b,) in conn.execute("SELECT body FROM records ORDER BY seq")]
    return [
        r for r in rows if (rid is None or r["request_id"] == rid) and (event is None or r["event"] == event)
    ]


def test_initialize_and_anonymous_tools(d):
    init, tools = run(d.mcp_url, None, _list)
    assert init.protocol_version in ("2025-11-25", "2025-06-18") and init.server_info.name == "botctl"
    assert init.capabilities.tools is not None
    names = _names(tools)
    # Anonymous: only the reads that need no visitor (calcom.available_slots, calendly.available_times).
    assert names == {"calcom__available_slots", "calendly__available_times"}, names
    for t in tools:
        assert t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
        assert t.input_schema["type"] == "object"


def test_ada_sees_her_tools_with_schemas_and_annotations(d):
    from botctl.connectors import registry

    _, tools = run(d.mcp_url, bot(d), _list)
    by_name = {t.name: t for t in tools}
    assert {
        "shopify__list_my_orders",
        "zendesk__create_ticket",
        CANCEL,
        "botctl__confirmation_status",
    } <= set(by_name)
    assert not [n for n in by_name if n.startswith(("hubspot__", "woocommerce__"))]  # not connected in acme
    for name, t in by_name.items():
        if name == "botctl__confirmation_status":
            continue
        _, spec = registry.find_action(name.replace("__", ".", 1))
        assert t.input_schema == json.loads(json.dumps(dict(spec.params)))
        assert t.annotations.read_only_hint is (not spec.is_write)
        assert t.annotations.idempotent_hint is spec.idempotent
        assert t.annotations.destructive_hint is spec.is_write
        assert (t.output_schema is not None) is spec.is_write  # the confirmation's shape
    assert len(by_name[CANCEL].name) <= 64


def test_grace_free_plan_and_foreign_token(d):
    _, tools = run(d.mcp_url, grace(d, "mcp"), _list)
    assert CANCEL in _names(tools)  # her own tools: the same list as Ada's
    _, tools = run(f"{d.url}/v1/workspaces/freebie/mcp", None, _list)
    assert _names(tools) == set()  # free plan: no actions
    r = httpx.post(
        d.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {foreign(d)}"},
    )
    assert r.status_code == 401 and r.json()["error"]["data"]["code"] == "invalid_identity"
    assert 'resource_metadata="' in r.headers["www-authenticate"]
    rec = _records(d, r.headers["x-request-id"])
    assert len(rec) == 1 and (rec[0]["event"], rec[0]["reason"]) == ("mcp.refused", "invalid_identity")
    # The SDK client is refused too (at initialize), never served as anonymous.
    from mcp.shared.exceptions import MCPError

    with pytest.raises(ExceptionGroup) as raised:
        run(d.mcp_url, foreign(d), _list)
    errors = _leaves(raised.value)
    assert any(isinstance(e, MCPError) and e.error.data == {"code": "invalid_identity"} for e in errors), (
        errors
    )


@pytest.mark.parametrize("use", [None, "widget", "chat"])
def test_the_widgets_token_is_refused_on_mcp(d, use):
    """The widget's token (no botctl_use, or "widget") answers confirmations, so the MCP endpoint never takes it
    (and a use it does not know either): 401, audited with the reason, never served as anonymous."""
    r = httpx.post(
        d.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {d.token(botctl_use=use)}"},
    )
    assert r.status_code == 401 and r.json()["error"]["data"]["code"] == "invalid_identity", r.text
    rec = _records(d, r.headers["x-request-id"])
    assert len(rec) == 1 and (rec[0]["event"], rec[0]["reason"]) == ("mcp.refused", "invalid_identity")
    assert rec[0]["detail"]["identity_reason"] == "wrong_use", rec[0]


def _leaves(group):
    out = []
    for e in group.exceptions:
        out += _leaves(e) if isinstance(e, BaseExceptionGroup) else [e]
    return out


def test_read_call_audited_with_channel_mcp(d):
    seed = d.sandbox.seed()

    async def work(s):
        return await s.call_tool("shopify__list_my_orders", {})

    _, res = run(d.mcp_url, bot(d), work)
    assert res.is_error is False
    text = json.dumps(res.structured_content)
    assert all(n in text for n in seed["shopify"]["ada@example.com"]["order_names"])
    assert not any(n in text for n in seed["shopify"]["grace@example.com"]["order_names"])
    rec = [r for r in _records(d, event="action.run") if r["action"] == "shopify.list_my_orders"][-1]
    assert rec["actor"] == {"type": "visitor", "sub": "u-ada", "email": "ada@example.com", "channel": "mcp"}
    assert rec["outcome"] == "ok"


def test_errors_are_tool_errors_with_the_stable_code(d):
    async def work(s):
        return [
            await s.call_tool("shopify__list_my_orders", {"email": "grace@example.com"}),
            await s.call_tool("shopify__nope", {}),
            await s.call_tool("hubspot__get_my_contact", {}),
        ]

    _, (bad_params, unknown, not_connected) = run(d.mcp_url, bot(d), work)
    assert bad_params.is_error and bad_params.structured_content["error"]["code"] == "invalid_params"
    assert unknown.is_error and unknown.structured_content["error"]["code"] == "unknown_action"
    assert not_connected.is_error and not_connected.structured_content["error"]["code"] == "not_connected"
    _, anon = run(d.mcp_url, None, lambda s: s.call_tool("shopify__list_my_orders", {}))
    assert anon.is_error and anon.structured_content["error"]["code"] == "identity_required"


def _ada_booking(d):
    return d.sandbox.seed()["calcom"]["ada@example.com"]["bookings"]


def _ask_cancel(d, token, booking, reason="plans changed"):
    async def work(s):
        return await s.call_tool(CANCEL, {"booking_id": booking, "reason": reason})

    _, res = run(d.mcp_url, token, work)
    assert res.is_error is False, res
    return res.structured_content["confirmation_required"]


def _answer(d, cid, token, decision="confirm", ws="acme", **body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return d.http.post(
        f"/v1/workspaces/{ws}/confirmations/{cid}", json={"decision": decision, **body}, headers=headers
    )


def _bookings_status(d, booking):
    async def work(s):
        return await s.call_tool("calcom__list_my_bookings", {"status": "cancelled"})

    _, res = run(d.mcp_url, bot(d), work)
    return booking in json.dumps(res.structured_content)


def test_write_waits_for_adas_confirmation_then_runs(d):
    booking = _ada_booking(d)[0]
    writes_before = len(d.sandbox.stats()["requests"])
    held = _ask_cancel(d, bot(d), booking)
    assert held["action"] == "calcom.cancel_my_booking" and held["status"] == "pending"
    assert (
        booking in held["summary"]
        and "plans changed" in held["summary"]
        and "your" in held["summary"].lower()
    )
    cid = held["confirmation_id"]
    # Nothing was sent to the vendor: the bot's word is not enough.
    sent = d.sandbox.stats()["requests"][writes_before:]
    assert not [r for r in sent if r["method"] in ("POST", "PUT", "PATCH", "DELETE")], sent
    requested = _records(d, event="action.confirmation_requested")[-1]
    assert requested["detail"]["confirmation_id"] == cid and requested["outcome"] == "pending"
    assert requested["actor"]["channel"] == "mcp" and requested["actor"]["email"] == "ada@example.com"
    # Waiting for Ada: in her list, not in Grace's; no list without a token.
    auth = {"Authorization": f"Bearer {d.token()}"}
    listed = d.http.get("/v1/workspaces/acme/confirmations", headers=auth).json()["confirmations"]
    assert cid in [c["confirmation_id"] for c in listed]
    r = d.http.get("/v1/workspaces/acme/confirmations", headers={"Authorization": f"Bearer {grace(d)}"})
    assert r.status_code == 200 and cid not in r.text
    assert d.http.get("/v1/workspaces/acme/confirmations").status_code == 401
    # The widget shows Ada the summary (from the provider, not from the bot).
    r = d.http.get(
        f"/v1/workspaces/acme/confirmations/{cid}", headers={"Authorization": f"Bearer {d.token()}"}
    )
    assert r.status_code == 200 and r.json()["summary"] == held["summary"]
    # Grace and an anonymous visitor cannot answer it; nor see it.
    r = _answer(d, cid, grace(d))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = _answer(d, cid, None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "identity_required"
    r = d.http.get(
        f"/v1/workspaces/acme/confirmations/{cid}", headers={"Authorization": f"Bearer {grace(d)}"}
    )
    assert r.status_code == 404
    # The bot cannot slip other params in with the answer.
    r = _answer(d, cid, d.token(), params={"booking_id": "other"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    # Ada confirms: it runs, with the params she was shown.
    r = _answer(d, cid, d.token())
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["confirmation_id"] == cid
    confirm_rid = r.headers["x-request-id"]
    assert _bookings_status(d, booking)
    conf = _records(d, confirm_rid, "action.confirmation")
    run_rec = _records(d, confirm_rid, "action.run")
    assert (
        len(conf) == 1
        and conf[0]["outcome"] == "ok"
        and conf[0]["detail"]["requested_in"] == requested["request_id"]
    )
    assert (
        len(run_rec) == 1 and run_rec[0]["outcome"] == "ok" and run_rec[0]["detail"]["confirmation_id"] == cid
    )
    assert run_rec[0]["detail"]["params"] == {"booking_id": booking, "reason": "plans changed"}
    assert (
        cid not in d.http.get("/v1/workspaces/acme/confirmations", headers=auth).text
    )  # answered: not waiting
    # A second answer is refused.
    r = _answer(d, cid, d.token())
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirmation_used"
    # The bot learns the outcome.
    _, st = run(
        d.mcp_url, bot(d), lambda s: s.call_tool("botctl__confirmation_status", {"confirmation_id": cid})
    )
    assert st.structured_content["status"] == "confirmed" and st.structured_content["outcome"] == "ok"
    _, st = run(
        d.mcp_url,
        grace(d, "mcp"),
        lambda s: s.call_tool("botctl__confirmation_status", {"confirmation_id": cid}),
    )
    assert st.is_error and st.structured_content["error"]["code"] == "not_found"


def test_cancel_expiry_and_tampered_params(d):
    booking = _ada_booking(d)[1]
    cid = _ask_cancel(d, bot(d), booking)["confirmation_id"]
    r = _answer(d, cid, d.token(), "cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert _answer(d, cid, d.token()).json()["error"]["code"] == "confirmation_used"
    assert not _bookings_status(d, booking)
    rec = _records(d, r.headers["x-request-id"], "action.confirmation")
    assert rec[0]["outcome"] == "denied" and rec[0]["reason"] == "confirmation_refused"
    # Expired (the clock moved on: the row says so, as the store would after five minutes).
    cid = _ask_cancel(d, bot(d), booking)["confirmation_id"]
    with sqlite3.connect(d.home / "vault.db") as conn:
        conn.execute("UPDATE mcp_confirmations SET expires_at = ? WHERE id = ?", (time.time() - 1, cid))
    r = _answer(d, cid, d.token())
    assert r.status_code == 410 and r.json()["error"]["code"] == "confirmation_expired"
    assert (
        _records(d, r.headers["x-request-id"], "action.confirmation")[0]["reason"] == "confirmation_expired"
    )
    assert _answer(d, cid, d.token()).json()["error"]["code"] == "confirmation_expired"
    # Expired with nobody coming back: the provider records it by itself (here: on the next MCP request).
    cid = _ask_cancel(d, bot(d), booking)["confirmation_id"]
    with sqlite3.connect(d.home / "vault.db") as conn:
        conn.execute("UPDATE mcp_confirmations SET expires_at = ? WHERE id = ?", (time.time() - 1, cid))
    run(d.mcp_url, None, lambda s: s.send_ping())
    expired = [
        r for r in _records(d, event="action.confirmation") if r["detail"].get("confirmation_id") == cid
    ]
    assert len(expired) == 1 and expired[0]["reason"] == "confirmation_expired"
    assert expired[0]["actor"] == {"type": "system"}
    assert _answer(d, cid, d.token()).status_code == 410
    # Params altered in the store after the ask (an attacker with the file): never run.
    cid = _ask_cancel(d, bot(d), booking)["confirmation_id"]
    with sqlite3.connect(d.home / "vault.db") as conn:
        conn.execute(
            "UPDATE mcp_confirmations SET params = ? WHERE id = ?",
            (json.dumps({"booking_id": _ada_booking(d)[0]}), cid),
        )
    r = _answer(d, cid, d.token())
    assert r.status_code == 409 and r.json()["error"]["code"] == "confirmation_used"
    assert not _bookings_status(d, booking)


def test_bot_altering_params_gets_a_new_confirmation_never_a_run(d):
    booking = _ada_booking(d)[1]
    first = _ask_cancel(d, bot(d), booking)
    second = _ask_cancel(d, bot(d), booking, reason="changed by the bot")
    assert first["confirmation_id"] != second["confirmation_id"]
    # The confirmation id as a tool argument is not a parameter of the action: refused, nothing runs.
    _, res = run(
        d.mcp_url,
        bot(d),
        lambda s: s.call_tool(CANCEL, {"booking_id": booking, "confirmation_id": first["confirmation_id"]}),
    )
    assert res.is_error and res.structured_content["error"]["code"] == "invalid_params"
    r = _answer(d, first["confirmation_id"], d.token())
    assert r.status_code == 200
    rec = _records(d, r.headers["x-request-id"], "action.run")[0]
    assert rec["detail"]["params"]["reason"] == "plans changed"  # what Ada was shown, not the later ask


def test_waived_action_runs_without_confirmation(d):
    sh(d.env, "mcp", "waive", "-w", "acme", "zendesk.create_ticket")
    try:
        _, tools = run(d.mcp_url, bot(d), _list)
        assert next(t for t in tools if t.name == "zendesk__create_ticket").output_schema is None
        _, res = run(
            d.mcp_url,
            bot(d),
            lambda s: s.call_tool(
                "zendesk__create_ticket", {"subject": "Over MCP", "description": "No confirmation needed."}
            ),
        )
        assert res.is_error is False and "result" in res.structured_content
        rec = [r for r in _records(d, event="action.run") if r["action"] == "zendesk.create_ticket"][-1]
        assert rec["outcome"] == "ok" and rec["detail"]["confirmation"] == "waived"
    finally:
        sh(d.env, "mcp", "waive", "-w", "acme", "--clear")


def test_protected_resource_metadata(d):
    sh(d.env, "workspace", "set-identity", "acme", "--issuer", "https://acme.example")
    time.sleep(5.2)  # the edge caches a workspace's config for 5 s
    r = d.http.get("/.well-known/oauth-protected-resource/v1/workspaces/acme/mcp")
    assert r.status_code == 200
    body = r.json()
    assert body["resource"] == d.mcp_url and body["authorization_servers"] == ["https://acme.example"]
    assert body["bearer_methods_supported"] == ["header"]
    r = d.http.get("/.well-known/oauth-protected-resource/v1/workspaces/other/mcp")
    assert r.status_code == 200 and "authorization_servers" not in r.json()
    r = d.http.get("/.well-known/oauth-protected-resource/v1/workspaces/nope/mcp")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_workspace"
    sh(d.env, "identity", "rules", "-w", "acme", "--no-issuer")


def test_transport_edges(d):
    url = "/v1/workspaces/acme/mcp"
    r = d.http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert r.status_code == 202 and r.content == b""
    # Even a notification with a bad token is refused (and audited), not quietly accepted.
    r = d.http.post(
        url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={"Authorization": "Bearer x.y.z"},
    )
    assert r.status_code == 401 and r.json()["error"]["data"]["code"] == "invalid_identity"
    assert _records(d, r.headers["x-request-id"])[0]["event"] == "mcp.refused"
    r = d.http.post(url, json=[{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600
    r = d.http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "resources/list"})
    assert r.status_code == 200 and r.json()["error"]["code"] == -32601
    r = d.http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"MCP-Protocol-Version": "1999"}
    )
    assert r.status_code == 400
    r = d.http.get(url)
    assert r.status_code == 405
    r = d.http.post(url, content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = d.http.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403  # DNS rebinding / foreign pages: the workspace's origins only
    r = d.http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": SITE_ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SITE_ORIGIN
