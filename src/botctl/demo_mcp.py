"""`botctl demo`'s MCP session (issue #18): a bot speaks MCP to the edge with the token Ada's site signs for it
(`botctl_use: "mcp"`), lists her tools, asks to cancel one of her bookings, gets `confirmation_required`; the bot
trying to answer with its own token is refused; Ada confirms the way the widget does (the summary fetched from
the daemon, her answer sent with the widget's token); the audit shows the records.
Plain JSON-RPC over httpx, so the demo needs nothing beyond botctl (the tests use the MCP SDK's client)."""

from __future__ import annotations

import json
from typing import Any


def run(demo: Any, http: Any, ada: str, ada_bot: str, booking_id: str) -> None:
    """`ada`: the widget's token for Ada; `ada_bot`: the one her site gives its bot (refused everywhere but MCP)."""
    url = "/v1/workspaces/acme/mcp"
    bot = {"Authorization": f"Bearer {ada_bot}"}
    ids = iter(range(1, 100))

    def rpc(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        r = http.post(
            url,
            headers=bot,
            json={"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params or {}},
        )
        demo.out.print(f"[bold]MCP[/bold] {method} → {r.status_code}")
        body = r.json()
        if r.status_code != 200 or "error" in body:
            demo.failures.append(f"MCP {method}: {r.status_code} {body.get('error')}")
            return {}
        return body["result"]

    init = rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "demo-bot", "version": "1"},
        },
    )
    demo.note(
        f"server {init.get('serverInfo', {}).get('name')} speaks MCP {init.get('protocolVersion')}; "
        "bearer = the token Ada's site signs for its bot (botctl_use: mcp), not the widget's"
    )
    tools = rpc("tools/list").get("tools", [])
    writes = [t["name"] for t in tools if not t["annotations"]["readOnlyHint"]]
    demo.out.print(
        f"  {len(tools)} tools for Ada, {len(writes)} of them change data (e.g. {', '.join(writes[:3])})",
        markup=False,
        highlight=False,
    )
    res = rpc(
        "tools/call",
        {
            "name": "calcom__cancel_my_booking",
            "arguments": {"booking_id": booking_id, "reason": "Plans changed"},
        },
    )
    held = (res.get("structuredContent") or {}).get("confirmation_required")
    if not held:
        demo.failures.append(f"the cancellation was not held for confirmation: {res}")
        return
    demo.out.print(
        "  confirmation_required: " + held["summary"].replace("\n", "; "), markup=False, highlight=False
    )
    demo.note("nothing has been sent to Cal.com: the bot's word is not enough")
    cid = held["confirmation_id"]
    mine_answer = http.post(
        f"/v1/workspaces/acme/confirmations/{cid}", json={"decision": "confirm"}, headers=bot
    )
    demo.show_http(
        "POST",
        "/v1/workspaces/acme/confirmations/cnf_… (the bot answers with its own token)",
        mine_answer,
        401,
    )
    ada_auth = {"Authorization": f"Bearer {ada}"}
    shown = http.get(f"/v1/workspaces/acme/confirmations/{cid}", headers=ada_auth)
    demo.show_http(
        "GET", "/v1/workspaces/acme/confirmations/cnf_… (the widget shows Ada the summary)", shown, 200
    )
    answer = http.post(
        f"/v1/workspaces/acme/confirmations/{cid}", json={"decision": "confirm"}, headers=ada_auth
    )
    demo.show_http("POST", "/v1/workspaces/acme/confirmations/cnf_… (Ada clicks Confirm)", answer, 200)
    again = http.post(
        f"/v1/workspaces/acme/confirmations/{cid}", json={"decision": "confirm"}, headers=ada_auth
    )
    demo.show_http("POST", "/v1/workspaces/acme/confirmations/cnf_… (the same id again)", again, 409)
    status = rpc("tools/call", {"name": "botctl__confirmation_status", "arguments": {"confirmation_id": cid}})
    st = status.get("structuredContent") or {}
    demo.out.print(
        f"  the bot reads the outcome: {st.get('status')}, {st.get('outcome')}", markup=False, highlight=False
    )
    trail = [json.loads(x) for x in demo.botctl("audit", "--json", "-n", "60").splitlines() if x.strip()]
    mine = [r for r in trail if (r.get("detail") or {}).get("confirmation_id") == cid]
    for rec in mine:
        who = f"{rec['actor'].get('email') or 'a refused token'} via {rec['actor'].get('channel')}"
        demo.out.print(
            f"  #{rec['seq']:<3} {who:<26} {rec['event']:<32} {rec['action'] or '':<26} {rec['outcome']:<7} "
            f"{rec['reason'] or ''}",
            markup=False,
            highlight=False,
        )
    events = [(r["event"], r["outcome"]) for r in mine]
    # The request, the bot's own answer refused, Ada's confirmation, the outcome; the replay refused.
    expected = [
        ("action.confirmation_requested", "pending"),
        ("action.confirmation", "denied"),
        ("action.confirmation", "ok"),
        ("action.run", "ok"),
        ("action.confirmation", "denied"),
    ]
    if events != expected:
        demo.failures.append(f"MCP audit records: {events}")
