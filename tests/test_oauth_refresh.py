"""Refresh: single-flight in a process and across processes, rotation persisted before use, unknown
outcomes, reuse detection, backoff, the action engine's hooks. Against `InteropAS` (oauthlib) over
loopback; the "crash" tests use real subprocesses that exit or are killed mid-refresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from botctl import connections, oauth, workspaces
from botctl.connectors import registry
from botctl.oauth import apps as oauth_apps
from botctl.secret import Secret
from test_oauth_as import CLIENT_ID, CLIENT_SECRET, InteropAS, browse
from test_oauth_flows import CALENDLY, CONFIG, BrowserUI, audit


@pytest.fixture
def peer():
    with InteropAS(access_ttl=60) as s:  # 60 s < the 300 s margin: every token is due at once
        yield s


@pytest.fixture
def ws(app):
    return workspaces.create(app, "acme", plan="pro")


def configure(app, peer: InteropAS, connector=CALENDLY) -> None:
    oauth_apps.set_app(
        app,
        connector,
        ws=None,
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        settings={**peer.app_settings(), "token_auth": "client_secret_basic"},
    )


def connect(app, ws, peer, connector=CALENDLY, config=CONFIG, *, skip_check=True) -> connections.Connection:
    configure(app, peer, connector)
    cfg = oauth_apps.resolve(app, ws, connector, config)
    ui = BrowserUI(browse)
    result = asyncio.run(
        oauth.connect(app, ws, connector, config, cfg, mode="no_browser", ui=ui, skip_check=skip_check)
    )
    assert ui.join().status_code == 200
    return result.connection


def stored(app, ws, conn) -> dict[str, str]:
    return {k: v.reveal() for k, v in connections.credential(app, ws, conn).items()}


def current(app, ws) -> connections.Connection:
    return connections.get(app.vault.conn, ws, "calendly")


def test_refresh_rotates_and_persists_both_tokens(app, ws, peer):
    conn = connect(app, ws, peer)
    before = stored(app, ws, conn)
    peer.access_ttl = 3600
    new = asyncio.run(oauth.refresh(app, ws, conn))
    after = stored(app, ws, new)
    assert (
        after["access_token"] != before["access_token"] and after["refresh_token"] != before["refresh_token"]
    )
    assert peer.refresh_token_ok(after["refresh_token"]) and not peer.refresh_token_ok(
        before["refresh_token"]
    )
    assert new.token_generation == conn.token_generation + 1 and new.refresh_state is None
    assert new.expires_at > conn.expires_at and new.refreshed_at
    rec = audit(app, "connection.refreshed")[-1]
    assert rec["detail"]["rotated"] is True and rec["outcome"] == "ok"
    assert (
        asyncio.run(oauth.ensure_fresh(app, ws, new)).token_generation == new.token_generation
    )  # not due now


def test_200_concurrent_callers_cause_exactly_one_token_request(app, ws, peer):
    conn = connect(app, ws, peer)
    peer.access_ttl = 3600
    peer.token_delay = 0.2  # keep the one request in flight while the others arrive

    async def herd() -> list[connections.Connection]:
        return await asyncio.gather(*(oauth.ensure_fresh(app, ws, conn) for _ in range(200)))

    results = asyncio.run(herd())
    assert peer.token_requests["refresh_token"] == 1
    assert {r.token_generation for r in results} == {conn.token_generation + 1}
    assert len(audit(app, "connection.refreshed")) == 1
    forced = asyncio.run(oauth.refresh(app, ws, current(app, ws), force=True))  # force always asks again
    assert forced.token_generation == conn.token_generation + 2 and peer.token_requests["refresh_token"] == 2


TWO_PROCS = textwrap.dedent("""
    import asyncio, hashlib, sys, time
    from botctl import connections, oauth, workspaces
    from botctl.session import Session
    from botctl.home import Home

    from pathlib import Path
    app = Session(Home(Path(sys.argv[1])), create=False)
    ws = workspaces.get(app.vault.conn, "acme")
    conn = connections.get(app.vault.conn, ws, "calendly")
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    conn = asyncio.run(oauth.ensure_fresh(app, ws, conn))
    token = connections.credential(app, ws, conn)["access_token"].reveal()
    print(hashlib.sha256(token.encode()).hexdigest(), conn.token_generation, flush=True)
""")


def test_two_processes_refreshing_at_once_send_one_request(home, app, ws, peer):
    conn = connect(app, ws, peer)
    peer.access_ttl = 3600
    peer.token_delay = 0.5
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCS, str(home.path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    lines = {o[0].strip() for o in outs}
    assert len(lines) == 1, lines  # both ended with the same token
    assert peer.token_requests["refresh_token"] == 1
    final = current(app, ws)
    digest = hashlib.sha256(stored(app, ws, final)["access_token"].encode()).hexdigest()
    assert lines == {f"{digest} {conn.token_generation + 1}"}
    assert peer.access[stored(app, ws, final)["access_token"]].revoked is False


CRASH_AFTER_PERSIST = textwrap.dedent("""
    import asyncio, os, sys
    from botctl import connections, oauth, workspaces
    from botctl.session import Session
    from botctl.home import Home

    from pathlib import Path
    app = Session(Home(Path(sys.argv[1])), create=False)
    ws = workspaces.get(app.vault.conn, "acme")
    conn = connections.get(app.vault.conn, ws, "calendly")
    asyncio.run(oauth.refresh(app, ws, conn, force=True))
    os._exit(0)  # dies between the response (persisted) and any use of the new tokens
""")


def test_rotation_is_persisted_before_use(home, app, ws, peer):
    conn = connect(app, ws, peer)
    old = stored(app, ws, conn)["refresh_token"]
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_PERSIST, str(home.path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    new = stored(app, ws, current(app, ws))["refresh_token"]
    assert new != old and new in peer.current_refresh_tokens() and not peer.refresh_token_ok(old)
    again = asyncio.run(oauth.refresh(app, ws, current(app, ws), force=True))  # the persisted token works
    assert again.status == "active" and peer.reuse_detected == 0 and peer.token_requests["refresh_token"] == 2


HANG_IN_REFRESH = textwrap.dedent("""
    import asyncio, sys
    from botctl import connections, oauth, workspaces
    from botctl.session import Session
    from botctl.home import Home

    from pathlib import Path
    app = Session(Home(Path(sys.argv[1])), create=False)
    ws = workspaces.get(app.vault.conn, "acme")
    conn = connections.get(app.vault.conn, ws, "calendly")
    print("go", flush=True)
    asyncio.run(oauth.refresh(app, ws, conn, force=True))
""")


def test_killed_mid_refresh_next_attempt_uses_stored_token_once_then_needs_reauth(home, app, ws, peer):
    connect(app, ws, peer)
    peer.token_delay = 5.0  # the server rotates, then the answer is slow: the client is killed meanwhile
    proc = subprocess.Popen(
        [sys.executable, "-c", HANG_IN_REFRESH, str(home.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "go"
    deadline = time.time() + 10
    while peer.token_requests["refresh_token"] < 1 and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    row = (
        sqlite3.connect(home.vault_db)
        .execute("SELECT refresh_state, refresh_lease_owner FROM connections")
        .fetchone()
    )
    assert (
        row[0] == "sent" and row[1] and f":{proc.pid}:" in row[1]
    )  # the attempt was recorded before sending
    peer.token_delay = 0
    with pytest.raises(oauth.NeedsReauth) as e:
        asyncio.run(
            oauth.refresh(app, ws, current(app, ws), force=True)
        )  # takes over the dead process's lease
    assert "outcome was unknown" in e.value.message and e.value.exit_code == 21
    assert peer.token_requests["refresh_token"] == 2 and peer.reuse_detected == 1
    after = current(app, ws)
    assert after.status == "needs_reauth" and "invalid_grant" in after.status_reason
    with pytest.raises(oauth.NeedsReauth):  # and it does not loop: no further token request
        asyncio.run(oauth.refresh(app, ws, after, force=True))
    assert peer.token_requests["refresh_token"] == 2


def test_unknown_outcome_5xx_then_one_retry_then_needs_reauth(app, ws, peer):
    conn = connect(app, ws, peer)
    peer.access_ttl = 3600
    peer.fault = "rotate_then_fail"  # the server rotates, then answers 500: the new token is lost
    with pytest.raises(oauth.Transient) as e:
        asyncio.run(oauth.refresh(app, ws, conn))
    assert e.value.code == "refresh_outcome_unknown"
    c = current(app, ws)
    assert (
        c.status == "active"
        and c.refresh_state == "unknown"
        and c.refresh_failures == 1
        and c.refresh_retry_at
    )
    failed = audit(app, "connection.refresh_failed")[-1]
    assert failed["reason"] == "refresh_outcome_unknown" and failed["detail"]["outcome_unknown"] is True
    with pytest.raises(oauth.NeedsReauth):
        asyncio.run(oauth.refresh(app, ws, c, force=True))
    assert peer.token_requests["refresh_token"] == 2
    rec = audit(app, "connection.refresh_failed")[-1]
    assert rec["reason"] == "needs_reauth" and rec["detail"]["previous_outcome"] == "unknown"
    assert rec["detail"]["error"] == "invalid_grant"


def test_unknown_outcome_recovers_when_the_server_keeps_the_old_token(app, ws, peer):
    conn = connect(app, ws, peer)
    peer.grace = True  # Shopify since 2026-08-28: the old token works until its replacement is used
    peer.fault = "rotate_then_fail"
    with pytest.raises(oauth.Transient):
        asyncio.run(oauth.refresh(app, ws, conn))
    ok = asyncio.run(oauth.refresh(app, ws, current(app, ws), force=True))
    assert ok.status == "active" and ok.refresh_state is None and ok.refresh_failures == 0
    assert peer.refresh_token_ok(stored(app, ws, ok)["refresh_token"])


def test_reuse_of_an_old_refresh_token_means_needs_reauth(app, ws, peer, cli):
    conn = connect(app, ws, peer)
    old = stored(app, ws, conn)["refresh_token"]
    refreshed = asyncio.run(oauth.refresh(app, ws, conn, force=True))
    good = stored(app, ws, refreshed)["refresh_token"]
    app.vault.put_secret(ws.ref, conn.id, "refresh_token", Secret(old))  # e.g. a vault restored from a backup
    peer.echo = True
    with pytest.raises(oauth.NeedsReauth) as e:
        asyncio.run(oauth.refresh(app, ws, current(app, ws), force=True))
    assert old not in e.value.message and "[redacted]" in e.value.message  # the server echoed it; we did not
    assert peer.reuse_detected == 1 and not peer.refresh_token_ok(good)  # the AS revoked the whole family
    c = current(app, ws)
    assert c.status == "needs_reauth"
    rec = audit(app, "connection.refresh_failed")[-1]
    assert rec["reason"] == "needs_reauth" and rec["detail"]["connection_status"] == "needs_reauth"
    r = cli("connections", "list")
    assert "needs_reauth" in r.err and "reconnect: botctl connect calendly -w acme" in r.err
    assert old not in r.err + cli("audit", "--json", "-n", "100").out


def test_transient_failure_backs_off_and_stays_active(app, ws, peer):
    conn = connect(app, ws, peer)
    valid = connections.epoch_to_iso(time.time() + 120)  # still valid, but inside the margin
    app.vault.conn.execute("UPDATE connections SET expires_at = ? WHERE id = ?", (valid, conn.id))
    peer.fault = "500"
    c = asyncio.run(oauth.ensure_fresh(app, ws, current(app, ws)))  # swallowed: the token still works
    assert c.status == "active" and c.refresh_failures == 1 and c.refresh_retry_at > time.time() + 1
    assert peer.token_requests["refresh_token"] == 1
    asyncio.run(oauth.ensure_fresh(app, ws, c))  # backing off: no second request yet
    assert peer.token_requests["refresh_token"] == 1
    expired = connections.epoch_to_iso(time.time() - 1)
    app.vault.conn.execute("UPDATE connections SET expires_at = ? WHERE id = ?", (expired, conn.id))
    with pytest.raises(oauth.Transient):  # expired and backing off: the caller learns it
        asyncio.run(oauth.ensure_fresh(app, ws, current(app, ws)))
    peer.fault = None
    ok = asyncio.run(oauth.refresh(app, ws, current(app, ws), force=True))
    assert ok.refresh_failures == 0 and ok.refresh_retry_at is None


def test_refresh_due_refreshes_only_what_is_due(app, ws, peer):
    connect(app, ws, peer)
    peer.access_ttl = 3600
    outcomes = asyncio.run(oauth.refresh_due(app))
    assert [(o.connector, o.outcome) for o in outcomes] == [("calendly", "refreshed")]
    assert asyncio.run(oauth.refresh_due(app)) == []  # nothing due any more
    assert peer.token_requests["refresh_token"] == 1


def test_client_secret_rotation_applies_without_reconnect(app, ws, peer):
    conn = connect(app, ws, peer)
    peer.clients[CLIENT_ID].secret = "rotated-secret-" + "9" * 20
    with pytest.raises(oauth.CredentialRejected) as e:
        asyncio.run(oauth.refresh(app, ws, conn, force=True))
    assert e.value.code == "invalid_client" and current(app, ws).status == "active"
    oauth_apps.set_app(
        app,
        CALENDLY,
        ws=None,
        client_id=CLIENT_ID,
        client_secret=Secret(peer.clients[CLIENT_ID].secret),
        settings={**peer.app_settings(), "token_auth": "client_secret_basic"},
    )
    assert asyncio.run(oauth.refresh(app, ws, current(app, ws), force=True)).status == "active"


# -- the action engine: refresh before the call, and once on a 401 ----------------------------------------


@pytest.fixture
def minted(sandbox):
    """An oauthlib server whose access tokens the sandbox's HubSpot API accepts."""

    def mint(scopes: list[str], ttl: int) -> str:
        return sandbox.state.tokens.issue_access_token("hubspot", scopes, ttl).token

    with InteropAS(access_ttl=3600, mint=mint) as s:
        yield s


def test_action_refreshes_once_on_401_and_retries(app, ws, minted, sandbox):
    from botctl.actions import run_action
    from botctl.connectors.base import Visitor

    hubspot = registry.get("hubspot")
    config = {"base_url_resolved": sandbox.url + "/hubspot", "sandbox": sandbox.url}
    conn = connect(app, ws, minted, hubspot, config, skip_check=False)
    assert conn.account_label and "portal" in conn.account_label.lower()
    ada = Visitor(sub="u-ada", email="ada@example.com", name="Ada Lovelace")
    assert asyncio.run(run_action(app, "acme", "hubspot.get_my_contact", visitor=ada, params={}))["ok"]
    sandbox.revoke_token(stored(app, ws, conn)["access_token"])  # the vendor stops accepting it
    out = asyncio.run(run_action(app, "acme", "hubspot.get_my_contact", visitor=ada, params={}))
    assert out["ok"] and minted.token_requests["refresh_token"] == 1
    runs = audit(app, "action.run")
    assert [(r["outcome"], r["reason"]) for r in runs] == [
        ("ok", None),
        ("retried", "token_refreshed"),
        ("ok", None),
    ]
    assert runs[1]["detail"]["retried"] is True and runs[2]["detail"]["attempt"] == 2
    assert runs[1]["request_id"] == runs[2]["request_id"]
    assert connections.get(app.vault.conn, ws, "hubspot").status == "active"
    # An expired token is refreshed before the call, not after a failure.
    app.vault.conn.execute(
        "UPDATE connections SET expires_at = ? WHERE id = ?",
        (connections.epoch_to_iso(time.time() - 5), conn.id),
    )
    assert asyncio.run(run_action(app, "acme", "hubspot.get_my_contact", visitor=ada, params={}))["ok"]
    assert minted.token_requests["refresh_token"] == 2 and len(audit(app, "action.run")) == 4


def test_action_on_dead_grant_marks_needs_reauth(app, ws, minted, sandbox):
    from botctl.actions import run_action
    from botctl.connectors.base import ActionError, Visitor

    hubspot = registry.get("hubspot")
    config = {"base_url_resolved": sandbox.url + "/hubspot", "sandbox": sandbox.url}
    conn = connect(app, ws, minted, hubspot, config)
    tokens: dict[str, Any] = stored(app, ws, conn)
    sandbox.revoke_token(tokens["access_token"])
    minted.revoke_family(minted.refresh[tokens["refresh_token"]].family)  # the user removed the app
    with pytest.raises(ActionError) as e:
        asyncio.run(
            run_action(
                app,
                "acme",
                "hubspot.get_my_contact",
                visitor=Visitor(sub="u", email="ada@example.com"),
                params={},
            )
        )
    assert e.value.code == "needs_reauth"
    assert connections.get(app.vault.conn, ws, "hubspot").status == "needs_reauth"
    assert [r["reason"] for r in audit(app, "action.run")] == ["needs_reauth"]


def test_oauth_connections_never_leak_tokens_into_audit_or_home(home, app, ws, peer):
    conn = connect(app, ws, peer)
    asyncio.run(oauth.refresh(app, ws, conn, force=True))
    needles = [t[k] for t in peer.issued for k in ("access_token", "refresh_token")] + [CLIENT_SECRET]
    blobs = [p.read_bytes() for p in home.path.rglob("*") if p.is_file()]
    for needle in needles:
        assert all(needle.encode() not in b for b in blobs)
    assert os.stat(home.vault_db).st_mode & 0o077 == 0


def test_reconnect_during_a_refresh_keeps_the_new_grant(app, ws, peer):
    conn = connect(app, ws, peer)
    peer.token_delay = 0.4

    async def race() -> connections.Connection:
        refreshing = asyncio.create_task(oauth.refresh(app, ws, conn, force=True))
        await asyncio.sleep(0.15)  # the refresh request is out; the operator reconnects meanwhile
        connections.save(
            app,
            ws,
            CALENDLY,
            auth="oauth",
            config=conn.config,
            credential={"access_token": Secret("brand-new-at"), "refresh_token": Secret("brand-new-rt")},
            account_label=None,
        )
        return await refreshing

    result = asyncio.run(race())
    assert stored(app, ws, result) == {"access_token": "brand-new-at", "refresh_token": "brand-new-rt"}
    assert peer.token_requests["refresh_token"] == 1 and audit(app, "connection.refreshed") == []
    late = peer.issued[-1]
    assert peer.access[late["access_token"]].revoked  # the superseded result was revoked, not kept
