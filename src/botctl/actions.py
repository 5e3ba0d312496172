"""`run_action`: the one path that executes anything in a vendor's system.

    unknown action → plan → identity → connection present and active → scopes → params schema
    → handler (with a credential-injecting, host-pinned client) → audit

Exactly one `action.run` record per attempt, whatever the outcome, with the reason code (a write's outcome
found already recorded `unknown` by another node, its process having stalled past the lapse, is recorded
as `action.outcome_late` instead: botctl/intents.py). The record is
durable before the caller sees the result (fail closed: if it cannot be written, the caller gets an
error, not the result). A write (`Action.is_write`) is also recorded as `action.started` before the
vendor is called, so a process killed mid-write still leaves a trace that becomes an `unknown` outcome
(botctl/intents.py). The daemon, `botctl actions run` and the tests all come through here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from botctl.connectors.base import ActionError, Visitor

if TYPE_CHECKING:
    from botctl.session import Session

# The whole action's vendor traffic (retries and waits included) must be over within this many seconds:
# the daemon's edge waits 30 s for the provider's answer, and the audit record has to be written too.
ACTION_BUDGET_S = 25.0


MESSAGES = {
    "unknown_workspace": "No such workspace.",
    "unknown_action": "No such action.",
    "plan_required": "Actions need the pro or business plan.",
    "identity_required": "This action needs a signed-in visitor.",
    "invalid_identity": "The identity token was refused.",
    "not_connected": "This tool is not connected in this workspace.",
    "needs_reauth": "This tool's connection needs to be re-authorised by the workspace operator.",
}


# The message of an `action.outcome_late` record (botctl/intents.py: fencing).
LATE = (
    "This write's outcome was already on record as unknown (the process running it stalled past the "
    "lapse and another one recorded it interrupted); this is its real outcome."
)


# What an action name and a request id may look like. Anything else is never written into an audit record as
# given (a terminal reading the audit would interpret control characters): it is refused, and kept escaped.
ACTION_NAME = re.compile(r"[a-z0-9_]{1,40}\.[a-z0-9_]{1,60}")
REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{8,36}")


def escaped(value: Any, limit: int = 200) -> str:
    """A caller-supplied string as a JSON string literal: controls, DEL and non-ASCII (bidi too) escaped."""
    return json.dumps(str(value)[:limit], ensure_ascii=True)


def new_request_id() -> str:
    return "req_" + os.urandom(8).hex()


def catalogue(conn: Any, ws: Any) -> list[dict[str, Any]]:
    """Every action, with whether this workspace can run it: `available`, or why not (`plan_required`,
    `not_connected`, `needs_reauth`). What `botctl actions list -w` shows and the daemon offers."""
    from botctl import connections
    from botctl.connectors import registry

    conns = {c.connector: c for c in connections.list_all(conn, ws)}
    out = []
    for c in registry.all_connectors():
        row = conns.get(c.name)
        status = (
            "plan_required"
            if not ws.actions_allowed
            else "not_connected"
            if row is None
            else "needs_reauth"
            if row.status != "active"
            else "available"
        )
        for a in c.actions:
            out.append(
                {
                    "name": f"{c.name}.{a.name}",
                    "connector": c.name,
                    "vendor": c.vendor,
                    "category": c.category,
                    "description": a.description,
                    "customer_specific": a.customer_specific,
                    "idempotent": a.idempotent,
                    "scopes": list(a.scopes),
                    "params": a.params,
                    "status": status,
                }
            )
    return out


def visitor_actor(visitor: Visitor | None) -> dict[str, Any]:
    if visitor is None:
        return {"type": "visitor"}
    return {"type": "visitor", "sub": visitor.sub, "email": visitor.email}


@functools.cache
def _validator(full_name: str):  # noqa: ANN202 - jsonschema type is imported lazily
    import jsonschema

    from botctl.connectors import registry

    found = registry.find_action(full_name)
    assert found is not None
    schema = found[1].params
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return jsonschema.validators.extend(cls, {"pattern": _full_pattern})(schema)


def _full_pattern(validator, pattern: str, instance: Any, schema: dict[str, Any]):  # noqa: ANN001, ANN202
    r"""`pattern` as the whole string, ASCII classes: Python's `$` also matches before a final newline, and
    its `\d` matches every script's digits; JSON Schema (ECMA-262) means neither."""
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not re.fullmatch(pattern, instance, re.ASCII):
        yield ValidationError(f"does not match {pattern!r}")


# C0 controls but tab and line breaks, DEL, C1 controls: never part of a legitimate parameter.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _control_in(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _CONTROL.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_params(full_name: str, params: Any) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ActionError("invalid_params", "params must be a JSON object.")
    if _control_in(params):
        raise ActionError("invalid_params", "parameters may not contain control characters.")
    errors = sorted(_validator(full_name).iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "params"
        if err.validator == "additionalProperties":
            extra = sorted(set(params) - set(err.schema.get("properties", {})))
            raise ActionError(
                "invalid_params", f"unknown parameter {extra[0]!r}." if extra else "unknown parameter."
            )
        if err.validator == "required":
            raise ActionError("invalid_params", f"missing parameter: {err.message.split(' ')[0]}.")
        # The validator's message may quote the value; describe the rule, not the input.
        raise ActionError(
            "invalid_params",
            f"{where}: does not satisfy '{err.validator}' ({_rule(err.validator, err.validator_value)}).",
        )
    return params


def _rule(name: str, value: Any) -> str:
    if name in ("type", "format", "pattern", "minimum", "maximum", "minLength", "maxLength", "enum"):
        return f"{name} {value}"
    return name


async def run_action(
    app: Session,
    workspace: str,
    action: str,
    *,
    visitor: Visitor | None,
    params: Any,
    request_id: str | None = None,
    actor: dict[str, Any] | None = None,
    timeout: float = 10.0,
    budget: float = ACTION_BUDGET_S,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    identity_error: str | None = None,
    client_ip: str | None = None,
    hold: Callable[[Any, str, Any, dict[str, Any]], Awaitable[dict[str, Any] | None]] | None = None,
    note: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `action` for `visitor` in `workspace`; returns {"ok", "action", "result", "request_id"}.

    `identity_error`: the caller's identity token was refused (the verifier's reason): the request is
    refused as `invalid_identity` and audited here like every other refusal — never run anonymously.
    `client_ip`: where the request came from (the daemon's edge), kept in the record.
    `hold(ws, action, spec, params)`: asked for a write once every check has passed, before anything is
    sent (botctl.mcp: the visitor's confirmation, or the operator's on a terminal). A dict with `public`
    stops the action there (recorded as `action.confirmation_requested`, outcome `pending`, with the dict's
    `audit` part in detail) and is returned as `confirmation_required`; a dict without it (its `audit` part
    kept in the record) or None lets the write go on; an ActionError it raises is a refusal like any other.
    `note`: more detail for the record (the confirmation an action runs on).
    Raises ActionError (after auditing it) on any refusal or failure.
    """
    from botctl import connections, intents, workspaces
    from botctl.audit import scrub
    from botctl.connectors import registry
    from botctl.workspaces import NAME_RE

    request_id = request_id if request_id and REQUEST_ID.fullmatch(request_id) else new_request_id()
    started = time.monotonic()
    detail: dict[str, Any] = {"params": scrub(params) if isinstance(params, dict) else None}
    # The names the record carries: the ones asked for when they are well-formed, else none (escaped in detail).
    rec_action: str | None = action
    rec_workspace: str | None = workspace
    if not ACTION_NAME.fullmatch(action):
        rec_action, detail["requested_action"] = None, escaped(action)
    if not NAME_RE.fullmatch(workspace) or "--" in workspace:
        rec_workspace, detail["requested_workspace"] = None, escaped(workspace)
    connector_name = rec_action.split(".", 1)[0] if rec_action else None
    if client_ip:
        detail["client_ip"] = client_ip
    if note:
        detail.update(note)
    if actor is not None and actor.get("type") != "visitor" and visitor is not None:
        detail["as_visitor"] = {"sub": visitor.sub, "email": visitor.email}
    conn_row = None
    client = None
    pending_id: int | None = None
    intent_seq = 0  # the write's `action.started` record

    async def record(outcome: str, reason: str | None, *, final: bool = True) -> None:
        detail["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        fields = {
            "workspace": rec_workspace,
            "actor": actor or visitor_actor(visitor),
            "action": rec_action,
            "connector": connector_name,
            "outcome": outcome,
            "reason": reason,
            "detail": detail,
            "request_id": request_id,
        }
        # Awaited: the caller gets its answer only once the record is durable (group commit in the daemon).
        if not final or pending_id is None:
            await app.aaudit("action.run", **fields)
            return
        # A write's outcome clears its intent in the same transaction, if the intent is still pending.
        if await app.aaudit_if("action.run", intents.clearing(pending_id), **fields) is not None:
            return
        # It is not: this process stalled past the lapse and another node (or process) has recorded the
        # write `unknown`. The real outcome goes on record as what it is, naming the record it resolves.
        detail["resolves"] = intents.resolution(app, pending_id, request_id, intent_seq)
        detail["late"] = LATE
        await app.aaudit("action.outcome_late", **fields)

    try:
        ws = workspaces.find(app.vault.conn, rec_workspace) if rec_workspace else None
        if ws is None:
            raise ActionError("unknown_workspace", MESSAGES["unknown_workspace"])
        if identity_error is not None:
            detail["identity_reason"] = identity_error
            raise ActionError("invalid_identity", MESSAGES["invalid_identity"])
        found = registry.find_action(rec_action) if rec_action else None
        if found is None:
            raise ActionError("unknown_action", f"No action named {escaped(action, 80)}.")
        connector, spec = found
        if not ws.actions_allowed:
            raise ActionError("plan_required", MESSAGES["plan_required"])
        if spec.customer_specific and (visitor is None or not visitor.email):
            raise ActionError("identity_required", MESSAGES["identity_required"])
        conn_row = connections.find(app.vault.conn, ws, connector.name)
        if conn_row is None:
            raise ActionError("not_connected", f"{connector.vendor} is not connected in this workspace.")
        if conn_row.status != "active":
            raise ActionError("needs_reauth", MESSAGES["needs_reauth"])
        from botctl.connectors.scopes import missing_scopes

        # Scopes are known for OAuth grants; an API key's permissions show up as a 403 at call time.
        missing = missing_scopes(connector, conn_row.scopes, spec.scopes) if conn_row.scopes else []
        if missing:
            detail["missing_scopes"] = missing
            raise ActionError(
                "needs_reauth",
                f"The {connector.vendor} connection lacks the permission this "
                f"action needs ({', '.join(missing)}); reconnect it.",
            )
        params = check_params(action, params)
        if hold is not None and spec.is_write:
            held = await hold(ws, action, spec, params)
            if held is not None and "public" not in held:  # go on (confirmed on a terminal, or waived)
                detail.update(held.get("audit") or {})
            elif held is not None:
                detail.update(held.get("audit") or {})
                detail["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
                await app.aaudit(
                    "action.confirmation_requested",
                    workspace=rec_workspace,
                    actor=actor or visitor_actor(visitor),
                    action=rec_action,
                    connector=connector_name,
                    outcome="pending",
                    reason="confirmation_required",
                    detail=detail,
                    request_id=request_id,
                )
                return {
                    "ok": False,
                    "action": action,
                    "confirmation_required": held["public"],
                    "request_id": request_id,
                }
        from botctl import oauth
        from botctl.connectors.base import ActionContext
        from botctl.connectors.http import build_client, upstream_statuses

        refreshable = oauth.can_refresh(app, ws, conn_row)
        if refreshable:  # OAuth: refresh first if the token expires within the margin
            conn_row = await oauth.fresh_for_action(app, ws, conn_row, request_id=request_id)
        if spec.is_write:
            # Write-ahead: pending in the vault, then `action.started` durably in the chain, and only then
            # the vendor. A process killed before the outcome record leaves the pending row, which the next
            # provider start records as outcome `unknown` (botctl/intents.py).
            who = actor or visitor_actor(visitor)
            pending_id = intents.begin(
                app,
                workspace=ws.name,
                action=action,
                connector=connector_name,
                actor=who,
                request_id=request_id,
            )
            detail["pending_id"] = pending_id
            intent = await app.aaudit(
                "action.started",
                workspace=ws.name,
                actor=who,
                action=action,
                connector=connector_name,
                outcome="pending",
                request_id=request_id,
                detail={"params": detail["params"], "pending_id": pending_id},
            )
            intent_seq = intent["seq"]
            intents.started(app, pending_id, intent_seq)
        while True:
            credential = connections.credential(app, ws, conn_row)
            client = build_client(
                connector,
                conn_row.config,
                credential,
                base_url=conn_row.base_url,
                idempotent=spec.idempotent,
                timeout=timeout,
                sleep=sleep,
                inner=getattr(app, "vendor_pool", None),
                deadline=started + budget,
            )
            try:
                async with client:
                    ctx = ActionContext(
                        client=client,
                        params=params,
                        visitor=visitor,
                        config=conn_row.public_config(),
                        request_id=request_id,
                    )
                    try:
                        result = await spec.handler(ctx)
                    finally:
                        detail["upstream_statuses"] = upstream_statuses(client)
                        detail.update(scrub(ctx.audit))
                break
            except ActionError as exc:
                if not (refreshable and exc.code == "needs_reauth" and exc.upstream_status == 401):
                    raise
                # The vendor refused the token: refresh once (never twice), and retry only when that
                # cannot repeat a write: an idempotent action, or the 401 was the only thing sent.
                refreshable = False
                retry = spec.idempotent or detail.get("upstream_statuses") == [401]
                conn_row = await oauth.refresh_after_401(app, ws, conn_row, request_id=request_id)
                detail["refreshed_after_401"] = True
                if not retry:
                    raise ActionError(
                        "upstream_error",
                        f"{connector.vendor} refused the expired credential; it "
                        "has been refreshed: retry the action.",
                        upstream_status=401,
                    ) from None
                detail |= {"upstream_status": 401, "message": exc.message, "retried": True}
                # One record per attempt: this one, then the retry's. This attempt is not the action's
                # outcome: it reads `retried` (the token was refreshed), and the next record says how it went.
                await record("retried", "token_refreshed", final=False)
                kept = ("params", "as_visitor", "pending_id", "confirmation_id", "confirmation")
                detail = {k: v for k, v in detail.items() if k in kept} | {"attempt": 2}
        connections.touch(app, conn_row)
    except ActionError as exc:
        if exc.code == "needs_reauth" and conn_row is not None and exc.upstream_status == 401:
            # The vendor no longer accepts this credential: stop using it until the operator reconnects.
            connections.set_status(app, conn_row, "needs_reauth", "the vendor answered 401")
            detail["connection_status"] = "needs_reauth"
        if exc.upstream_status is not None:
            detail["upstream_status"] = exc.upstream_status
        if exc.retry_after is not None:
            detail["retry_after"] = exc.retry_after
        detail["message"] = exc.message
        from botctld.error_codes import ERRORS

        outcome = ERRORS[exc.code].outcome if exc.code in ERRORS else "error"  # denied / error / unknown
        await record(outcome, exc.code)
        raise
    except Exception as exc:
        detail["exception"] = type(exc).__name__
        await record("error", "internal_error")
        raise ActionError("internal_error", "Something went wrong on our side.") from None
    await record("ok", None)
    return {"ok": True, "action": action, "result": result, "request_id": request_id}
