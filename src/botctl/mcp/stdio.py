"""`botctl mcp serve --stdio`: the workspace's actions as MCP tools for an operator's local agent (a support
engineer's desktop assistant), over newline-delimited JSON-RPC on stdin/stdout (the MCP stdio transport).

The agent acts as the operator (actor `operator`, channel `mcp`), for the customer named with `--as-email`
(without one, only the actions that need no customer are tools). A write is asked on the terminal
(/dev/tty: stdin and stdout carry the protocol) with the same summary a visitor would see, unless `--yes`;
without a terminal and without `--yes` it is refused (`confirmation_refused`), never run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from botctl.connectors.base import Visitor
    from botctl.session import Session

MAX_LINE = 1024 * 1024
MAX_DEPTH = 32  # JSON nesting, as on the edge (botctld.bodies.MAX_DEPTH)


def _depth(value: Any) -> int:
    """How deeply containers nest (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def terminal_hold(visitor: Visitor | None, *, yes: bool, tty_path: str = "/dev/tty"):  # noqa: ANN201
    from botctl.connectors import registry
    from botctl.connectors.base import ActionError
    from botctl.mcp.confirmations import summarize

    async def hold(ws: Any, action: str, spec: Any, params: dict[str, Any]) -> dict[str, Any]:
        if yes:
            return {"audit": {"confirmation": "operator --yes"}}
        from botctl.cli.output import escape

        found = registry.find_action(action)
        summary = summarize(spec, found[0].vendor if found else action, params)
        # The agent chose every value: one line each, controls and line breaks shown as visible escapes, so
        # none can move the cursor, clear what was said, or print a question of its own (nor reach OSC 52).
        lines = [summary["title"] + "."] + [f"{d['label']}: {d['value']}" for d in summary["details"]]
        who = escape(visitor.email or "") if visitor is not None else "no customer"
        try:
            with open(tty_path, "r+", encoding="utf-8") as tty:
                tty.write(f"\nbotctl mcp: the agent asks to run {action} in {ws.name} for {who}:\n")
                tty.write("".join(f"  {escape(line)}\n" for line in lines))
                tty.write("Run it? [y/N] ")
                tty.flush()
                answer = await asyncio.to_thread(tty.readline)
        except OSError:
            raise ActionError(
                "confirmation_refused",
                "No terminal to confirm this change on; start the server "
                "with --yes to let the agent make changes.",
            ) from None
        if answer.strip().lower() not in ("y", "yes"):
            raise ActionError("confirmation_refused", "The operator did not confirm this change.")
        return {"audit": {"confirmation": "operator terminal"}}

    return hold


async def serve(
    app: Session,
    workspace: str,
    visitor: Visitor | None,
    *,
    yes: bool,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> None:
    from botctl.audit import operator_actor
    from botctl.mcp.server import INVALID_REQUEST, PARSE_ERROR, Caller, handle

    actor = {**operator_actor(), "channel": "mcp"}
    hold = terminal_hold(visitor, yes=yes)
    while True:
        line = await asyncio.to_thread(stdin.readline, MAX_LINE + 1)
        if not line:
            return
        if not line.strip():
            continue
        from botctl.actions import new_request_id

        try:
            message = json.loads(line) if len(line) <= MAX_LINE else None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            message = None
        if message is None:
            body: dict[str, Any] | None = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": PARSE_ERROR, "message": "Not a JSON message."},
            }
        elif _depth(message) > MAX_DEPTH:  # the edge's cap: params are walked recursively
            mid = message.get("id") if isinstance(message, dict) else None
            body = {
                "jsonrpc": "2.0",
                "id": mid if isinstance(mid, str | int) and not isinstance(mid, bool) else None,
                "error": {
                    "code": INVALID_REQUEST,
                    "message": f"The message is nested over {MAX_DEPTH} levels deep.",
                },
            }
        else:
            caller = Caller(app, workspace, visitor, actor, new_request_id(), operator=True, hold=hold)
            _, body = await handle(caller, message)
        if body is not None:
            stdout.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")
            stdout.flush()
