"""`botctl mcp serve --stdio` (issue #18): the workspace's actions for an operator's local agent, driven by the
official MCP SDK's stdio client against a real `botctl` process; audited as the operator on channel mcp;
a change without --yes and without a terminal is refused, never run."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def acme(cli, sandbox):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    plan = sandbox.credentials()["calcom"]["connect"]
    settings = [arg for k, v in plan["config"].items() for arg in ("--config", f"{k}={v}")]
    r = cli(
        "connect",
        "calcom",
        "-w",
        "acme",
        "--sandbox",
        sandbox.url,
        *settings,
        "--api-key-stdin",
        input="".join(v + "\n" for v in plan["credential"].values()),
    )
    assert r.code == 0, r.err
    return sandbox


async def _agent(args, work):
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "botctl", "mcp", "serve", "--stdio", *args], env=dict(os.environ)
    )
    with open(
        os.devnull, "w"
    ) as errlog:  # the server's status line on stderr (pytest's stderr has no fileno)
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)


def test_operator_agent_lists_and_runs_for_a_named_customer(acme, cli):
    booking = acme.seed()["calcom"]["ada@example.com"]["bookings"][0]

    async def work(s):
        tools = (await s.list_tools()).tools
        listed = await s.call_tool("calcom__list_my_bookings", {})
        cancelled = await s.call_tool("calcom__cancel_my_booking", {"booking_id": booking})
        return tools, listed, cancelled

    tools, listed, cancelled = asyncio.run(
        _agent(["-w", "acme", "--as-email", "ada@example.com", "--yes"], work)
    )
    names = {t.name for t in tools}
    assert {"calcom__list_my_bookings", "calcom__cancel_my_booking"} <= names
    assert (
        "botctl__confirmation_status" not in names
    )  # the operator confirms on the terminal, not in a widget
    assert listed.is_error is False and booking in json.dumps(listed.structured_content)
    assert cancelled.is_error is False, cancelled
    recs = cli("audit", "--json", "--event", "action.run").ndjson()
    rec = [r for r in recs if r["action"] == "calcom.cancel_my_booking"][-1]
    assert rec["outcome"] == "ok" and rec["actor"]["type"] == "operator" and rec["actor"]["channel"] == "mcp"
    assert rec["detail"]["as_visitor"]["email"] == "ada@example.com"
    assert rec["detail"]["confirmation"] == "operator --yes"


def test_change_without_yes_and_without_a_terminal_is_refused(acme, cli):
    booking = acme.seed()["calcom"]["ada@example.com"]["bookings"][1]
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "calcom__cancel_my_booking", "arguments": {"booking_id": booking}},
        },
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "botctl",
            "mcp",
            "serve",
            "--stdio",
            "-w",
            "acme",
            "--as-email",
            "ada@example.com",
        ],
        input="".join(json.dumps(x) + "\nnot json\n" for x in lines),
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )  # no /dev/tty
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [a["id"] for a in answers] == [1, None, None, 2, None]  # the notification has no answer
    assert answers[1]["error"]["code"] == -32700
    assert answers[3]["result"]["isError"] is True
    assert answers[3]["result"]["structuredContent"]["error"]["code"] == "confirmation_refused"
    rec = [
        r
        for r in cli("audit", "--json", "--event", "action.run").ndjson()
        if r["action"] == "calcom.cancel_my_booking"
    ][-1]
    assert rec["outcome"] == "denied" and rec["reason"] == "confirmation_refused"
    assert not cli("audit", "--json", "--event", "action.started").ndjson()  # nothing was sent to the vendor


def test_serve_needs_stdio_and_a_workspace(cli, acme):
    r = cli("mcp", "serve", "-w", "acme")
    assert r.code != 0 and "--stdio" in r.err
    r = cli("mcp", "serve", "--stdio", "-w", "nope")
    assert r.code != 0 and "nope" in r.err and "Traceback" not in r.err


def test_a_grant_without_the_scope_is_no_tool(acme, home):
    """Tools follow the connection's granted scopes: an action the grant does not cover is not offered."""
    from botctl import workspaces
    from botctl.mcp.tools import tools_for
    from botctl.session import Session

    a = Session(home, create=False)
    try:
        a.vault.conn.execute(
            "UPDATE connections SET scopes = ? WHERE connector = 'calcom'", (json.dumps(["BOOKING_READ"]),)
        )
        ws = workspaces.get(a.vault.conn, "acme")
        names = {t["name"] for t in tools_for(a.vault.conn, ws, signed_in=True, operator=False, waived=[])}
    finally:
        a.close()
    assert "calcom__list_my_bookings" in names  # BOOKING_READ covers it
    assert (
        "calcom__cancel_my_booking" not in names and "calcom__book_meeting" not in names
    )  # need BOOKING_WRITE
