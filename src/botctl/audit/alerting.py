"""Alerts: the conditions an operator must hear about without watching a terminal, raised into
`shipping.db`'s `alert_events` and POSTed, HMAC-signed and retried, to each alert webhook.

Types (payloads in docs/alerts.md):

- `connection.needs_reauth`: a connection fell to needs_reauth (a record with detail.connection_status
  `needs_reauth`, or a failed check with reason `needs_reauth`); the data carries the reconnect command;
- `connection.refresh_failed`: a `connection.refresh_failed` record (background loop or on demand);
- `audit.chain_broken`: the log's head disagrees with its checkpoint, a shipped batch fails its MACs,
  or the log was rewritten under a sink (raised outside the chain: the chain is what broke);
- `provider.restarted`: the supervisor restarted a provider that had died;
- `alert.test`: `botctl alert test`.

Records are read for alerts once each (`alert_scan_seq` in shipping.db, moved in the same transaction
as the alerts it raised); a fresh home starts from its head, so history raises nothing.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any

from botctl.audit import destinations, shipstate
from botctl.home import Home

log = logging.getLogger("botctl.alerts")
ALERT_TYPES = (
    "connection.needs_reauth",
    "connection.refresh_failed",
    "audit.chain_broken",
    "provider.restarted",
    "alert.test",
)
_SCAN_KEY = "alert_scan_seq"


def _reconnect(rec: dict[str, Any]) -> str:
    return f"botctl connect {rec.get('connector')} -w {rec.get('workspace')}"


def alerts_for(rec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The alerts one audit record raises (most raise none)."""
    detail = rec.get("detail") if isinstance(rec.get("detail"), dict) else {}
    out = []
    base = {
        "workspace": rec.get("workspace"),
        "connector": rec.get("connector"),
        "seq": rec.get("seq"),
        "record_hash": rec.get("hash"),
        "ts": rec.get("ts"),
        "request_id": rec.get("request_id"),
    }
    if rec.get("event") == "connection.refresh_failed":
        out.append(
            (
                "connection.refresh_failed",
                {**base, "reason": rec.get("reason"), "upstream_status": detail.get("upstream_status")},
            )
        )
    if detail.get("connection_status") == "needs_reauth" or (
        str(rec.get("event", "")).startswith("connection.")
        and rec.get("reason") == "needs_reauth"
        and rec.get("outcome") != "ok"
    ):
        out.append(
            (
                "connection.needs_reauth",
                {
                    **base,
                    "reason": rec.get("reason"),
                    "event": rec.get("event"),
                    "reconnect": _reconnect(rec),
                },
            )
        )
    return out


def scan_records(home: Home, conn) -> int:  # noqa: ANN001 - the shipping.db connection
    """Raise the alerts of records not read yet; returns how many were raised."""
    from botctl import store
    from botctl.audit.export import iter_rows

    head_seq, _ = shipstate.head(home)
    raised = 0
    with store.transaction(conn):
        seen = shipstate.get_meta(conn, _SCAN_KEY)
        if seen is None or int(seen) > head_seq:  # first run, or the log shrank: from its head
            shipstate.set_meta(conn, _SCAN_KEY, str(head_seq))
            return 0
        last = int(seen)
        for seq, body, _prev_hash, hash_ in iter_rows(home, after_seq=last):
            try:
                rec = {"seq": seq, **json.loads(body), "hash": hash_}
            except ValueError:
                rec = {"seq": seq}
            for type_, data in alerts_for(rec):
                shipstate.raise_alert(conn, type_, data)
                raised += 1
            last = seq
        shipstate.set_meta(conn, _SCAN_KEY, str(last))
    return raised


def chain_broken(conn, problem: str, *, kind: str, key: str, extra: dict[str, Any] | None = None) -> bool:  # noqa: ANN001
    """Raise `audit.chain_broken` once per distinct break (`key`); True if raised now."""
    from botctl import store

    with store.transaction(conn):
        if shipstate.get_meta(conn, f"chain_alert:{key}") is not None:
            return False
        shipstate.set_meta(conn, f"chain_alert:{key}", store.now_iso())
        shipstate.raise_alert(conn, "audit.chain_broken", {"problem": problem, "kind": kind, **(extra or {})})
    log.error("audit chain broken: %s (alert raised)", problem)
    return True


def check_chain(home: Home, key: bytes, conn) -> dict[str, Any]:  # noqa: ANN001
    """Hold the head against the checkpoint (no walk); raise the alert on a break. Returns the state."""
    from botctl import store
    from botctl.audit.chain import head_state

    vault = store.open_vault(home, migrate_to_latest=False)
    try:
        state = head_state(home, key, vault)
    finally:
        vault.close()
    if state.get("chain") == "broken":
        chain_broken(
            conn,
            state.get("problem") or "broken",
            kind=state.get("kind") or "broken",
            key=f"head:{state.get('kind')}:{state.get('head_seq')}:{state.get('checkpoint_seq')}",
            extra={
                "head_seq": state.get("head_seq"),
                "checkpoint_seq": state.get("checkpoint_seq"),
                "fix": "botctl audit verify; then botctl audit seal-break --reason TEXT",
            },
        )
    else:  # mended (sealed): the next break of the head alerts again
        conn.execute("DELETE FROM meta WHERE key LIKE 'chain_alert:head:%'")
    return state


def verify_walk(home: Home, key: bytes, conn) -> dict[str, Any]:  # noqa: ANN001
    """Walk the whole chain (`audit verify`), and alert when it is broken somewhere the head check cannot
    see (an edited old record under an intact head). Returns {"ok", "records", "first_bad_seq", "problem", "at"}."""
    from botctl import store
    from botctl.audit.verification import verify

    vault = store.open_vault(home, migrate_to_latest=False)
    try:
        verdict = verify(home, key, vault)
        state = check_chain(home, key, conn) if not verdict.ok else {"chain": "ok"}
    finally:
        vault.close()
    if not verdict.ok and state.get("chain") == "ok":  # else the head alert already tells of this break
        chain_broken(
            conn,
            f"audit verify: broken at record {verdict.first_bad_seq}: {verdict.problem}",
            kind="verify_failed",
            key=f"verify:{verdict.first_bad_seq}:{verdict.problem}",
            extra={
                "first_bad_seq": verdict.first_bad_seq,
                "fix": "botctl audit verify (keep copies of the log first)",
            },
        )
    return {
        "ok": verdict.ok,
        "records": verdict.records,
        "first_bad_seq": verdict.first_bad_seq,
        "problem": verdict.problem,
        "at": store.now_iso(),
    }


_ALIVE = "provider.alive"


def provider_started(home: Home, pid: int) -> bool:
    """Note this provider's start; if the last one never stopped cleanly (killed with its supervisor, an
    OOM under systemd, a reboot) and nobody raised `provider.restarted` for it, raise it now. True if raised."""
    from botctl import store
    from botctl.home import write_private_file

    marker = home.run_dir / _ALIVE
    raised = False
    try:
        prev = json.loads(marker.read_text())
    except (OSError, ValueError):
        prev = None
    if isinstance(prev, dict) and isinstance(prev.get("started"), str):
        conn = shipstate.connect(home)
        try:
            told = conn.execute(
                "SELECT 1 FROM alert_events WHERE type = 'provider.restarted' AND created_at >= ?",
                (prev["started"],),
            ).fetchone()
            if told is None:  # the supervisor saw no death (it died too): say so from here
                shipstate.raise_alert(
                    conn,
                    "provider.restarted",
                    {
                        "exit_code": None,
                        "previous_pid": prev.get("pid"),
                        "previous_started": prev["started"],
                        "detected": "at start: the previous provider did not stop cleanly",
                        "log": "botctl daemon logs",
                    },
                )
                raised = True
        finally:
            conn.close()
    home.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_file(marker, json.dumps({"pid": pid, "started": store.now_iso()}).encode())
    return raised


def provider_stopped(home: Home) -> None:
    """A clean stop: the next start raises nothing."""
    (home.run_dir / _ALIVE).unlink(missing_ok=True)


def raise_now(home: Home, type_: str, data: dict[str, Any]) -> int:
    """Raise one alert from any process (the supervisor, the CLI)."""
    conn = shipstate.connect(home)
    try:
        return shipstate.raise_alert(conn, type_, data)
    finally:
        conn.close()


def payload(event: dict[str, Any]) -> bytes:
    body = {
        "id": event["id"],
        "type": event["type"],
        "created_at": event["created_at"],
        "host": socket.gethostname(),
        "data": event["data"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(conn, *, force: bool = False) -> list[dict[str, Any]]:  # noqa: ANN001
    """POST each hook's pending alerts in order; stop a hook at its first failure (backoff)."""
    now = time.time()
    results = []
    for hook in shipstate.list_hooks(conn):
        if not force and hook.next_attempt > now:
            continue
        sent = 0
        for event in shipstate.events_after(conn, hook.delivered_id, limit=100):
            try:
                destinations.post(
                    hook.url,
                    payload(event),
                    secret_env=hook.secret_env,
                    headers={
                        "Content-Type": "application/json",
                        "X-Botctl-Event": event["type"],
                        "X-Botctl-Delivery": event["id"],
                    },
                )
            except destinations.DeliveryFailed as exc:
                shipstate.failed(
                    conn, "alert_hooks", hook.name, str(exc), now + shipstate.backoff(hook.failures + 1)
                )
                results.append({"hook": hook.name, "sent": sent, "error": str(exc)})
                break
            shipstate.hook_delivered(conn, hook.name, event["n"])
            sent += 1
        else:
            results.append({"hook": hook.name, "sent": sent})
    return results


def status(home: Home) -> list[dict[str, Any]]:
    """Each alert webhook: name, url (redacted), pending alerts, failures, last error."""
    if not shipstate.db_path(home).exists():
        return []
    conn = shipstate.connect(home)
    try:
        last = shipstate.last_event_id(conn)
        return [
            {
                "name": h.name,
                "url": destinations.redact_url(h.url),
                "secret_env": h.secret_env,
                "pending": max(0, last - h.delivered_id),
                "failures": h.failures,
                "last_error": h.last_error,
                "delivered_at": h.delivered_at,
            }
            for h in shipstate.list_hooks(conn)
        ]
    finally:
        conn.close()


# Shown by doctor and daemon status beside their own findings (needs_reauth connections and a broken chain
# already have theirs): what happened recently that left no standing state behind.
TRANSIENT_TYPES = ("connection.refresh_failed", "provider.restarted")


def describe(event: dict[str, Any]) -> str:
    d = event["data"]
    if event["type"] == "connection.refresh_failed":
        return f"refresh of {d.get('connector')} in {d.get('workspace')} failed ({d.get('reason')}) at {event['created_at']}"
    if event["type"] == "provider.restarted":
        return f"the provider died (exit {d.get('exit_code')}) and was restarted at {event['created_at']}"
    if event["type"] == "connection.needs_reauth":
        return f"{d.get('connector')} in {d.get('workspace')} needs re-authorisation: {d.get('reconnect')}"
    if event["type"] == "audit.chain_broken":
        return f"audit chain broken: {d.get('problem')}"
    return f"{event['type']} at {event['created_at']}"


def recent(
    home: Home, *, hours: float = 24.0, types: tuple[str, ...] = TRANSIENT_TYPES
) -> list[dict[str, Any]]:
    """Alerts of `types` raised in the last `hours`, newest last, each with a `summary` line."""
    from datetime import UTC, datetime, timedelta

    if not shipstate.db_path(home).exists():
        return []
    since = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn = shipstate.connect(home)
    try:
        rows = conn.execute(
            f"SELECT id FROM alert_events WHERE created_at >= ? AND type IN "
            f"({','.join('?' * len(types))}) ORDER BY id LIMIT 1",
            (since, *types),
        ).fetchone()
        if rows is None:
            return []
        events = [e for e in shipstate.events_after(conn, rows[0] - 1, limit=1000) if e["type"] in types]
    finally:
        conn.close()
    return [{**e, "summary": describe(e)} for e in events]
