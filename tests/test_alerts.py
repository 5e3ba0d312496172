"""Alert webhooks from real conditions (no daemon): an OAuth refresh refused for good (refresh_failed and
needs_reauth), an authorisation server that is down (refresh_failed only), a webhook that is down then up
(the alerts wait, in order), and the payload signed as docs/alerts.md says."""

from __future__ import annotations

import asyncio
import json

import pytest

from botctl import connections, oauth
from botctl.errors import BotctlError, NeedsReauth
from test_audit_sinks import _Hook
from test_oauth_as import InteropAS
from test_oauth_refresh import connect, stored, ws  # noqa: F401 - ws is a fixture


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("BOTCTL_TEST_ALERT_SECRET", "alert-secret")
    h = _Hook(b"alert-secret")
    yield h
    h.close()


def _alerts(hook) -> list[dict]:
    return [json.loads(body) for _, body in hook.bodies]


def test_refresh_refused_for_good_alerts_refresh_failed_and_needs_reauth(app, ws, cli, hook):  # noqa: F811
    with InteropAS(access_ttl=60) as peer:
        conn = connect(app, ws, peer)
        assert cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_ALERT_SECRET").code == 0
        peer.revoke_family(
            peer.refresh[stored(app, ws, conn)["refresh_token"]].family
        )  # the user removed the app
        with pytest.raises(NeedsReauth):
            asyncio.run(oauth.refresh(app, ws, conn, force=True))
    assert connections.get(app.vault.conn, ws, "calendly").status == "needs_reauth"
    assert cli("alert", "flush").code == 0
    alerts = _alerts(hook)
    assert [a["type"] for a in alerts] == ["connection.refresh_failed", "connection.needs_reauth"]
    assert alerts[0]["data"]["reason"] == "needs_reauth" and alerts[0]["data"]["connector"] == "calendly"
    assert alerts[1]["data"]["reconnect"] == "botctl connect calendly -w acme"
    headers = hook.bodies[0][0]
    assert (
        headers["X-Botctl-Event"] == "connection.refresh_failed"
        and headers["X-Botctl-Delivery"] == alerts[0]["id"]
    )
    assert hook.bad_signatures == 0
    assert cli("alert", "flush").code == 0 and len(hook.bodies) == 2  # delivered once


def test_authorisation_server_down_alerts_refresh_failed_only(app, ws, cli, hook):  # noqa: F811
    with InteropAS(access_ttl=60) as peer:
        conn = connect(app, ws, peer)
    assert cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_ALERT_SECRET").code == 0
    with pytest.raises(BotctlError) as err:
        asyncio.run(oauth.refresh(app, ws, conn, force=True))  # the server is gone: transient
    assert not isinstance(err.value, NeedsReauth)
    assert connections.get(app.vault.conn, ws, "calendly").status == "active"
    assert cli("alert", "flush").code == 0
    alerts = _alerts(hook)
    assert [a["type"] for a in alerts] == ["connection.refresh_failed"]
    assert alerts[0]["data"]["reason"] in ("upstream_unavailable", "refresh_outcome_unknown")
    recent = [f for f in cli("doctor", "--json").json()["findings"] if f["check"] == "recent alerts"]
    assert (
        recent
        and recent[0]["status"] == "warn"
        and "refresh of calendly in acme failed" in recent[0]["message"]
    )


def test_webhook_down_keeps_alerts_in_order_until_it_is_up(home, cli, hook):
    assert cli("init").code == 0
    assert (
        cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_ALERT_SECRET", "--name", "oncall").code
        == 0
    )
    hook.up = False
    assert cli("alert", "test").code == 1
    assert cli("alert", "test").code == 1
    listed = cli("alert", "list", "--json").json()[0]
    assert listed["pending"] == 2 and listed["failures"] >= 1 and "503" in listed["last_error"]
    finding = [f for f in cli("doctor", "--json").json()["findings"] if f["check"] == "audit shipping"]
    assert finding and "alert webhook oncall" in finding[0]["message"] and finding[0]["status"] == "warn"
    hook.up = True
    assert cli("alert", "flush").code == 0
    ids = [a["id"] for a in _alerts(hook)]
    assert len(ids) == 2 and ids == sorted(ids, key=lambda i: int(i.split("_")[1]))
    assert cli("alert", "list", "--json").json()[0]["pending"] == 0


def test_alert_urls_and_secrets_checked(home, cli):
    assert cli("init").code == 0
    assert cli("alert", "add", "http://198.51.100.7/hook", "--secret-env", "X").code == 2
    assert cli("alert", "add", "https://ops.example/hook", "--secret-env", "not a name").code == 2
    r = cli("alert", "add", "https://ops.example/hook?token=abc", "--secret-env", "OPS_SECRET")
    assert r.code == 2 and "abc" not in r.err and "secret-looking query parameter" in r.err
    assert cli("alert", "add", "https://ops.example/hook?team=ops", "--secret-env", "OPS_SECRET").code == 0
    rec = cli("audit", "--event", "alert.webhook_added", "--json").ndjson()[-1]
    assert "team=ops" not in json.dumps(rec) and rec["detail"]["signed_with_env"] == "OPS_SECRET"
    assert cli("alert", "remove", "webhook-1").code == 0 and cli("alert", "remove", "webhook-1").code == 3


def test_old_alerts_pruned_only_once_every_webhook_took_them(home, cli, hook):
    from botctl.audit import shipping, shipstate

    assert cli("init").code == 0
    assert cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_ALERT_SECRET").code == 0
    hook.up = False
    assert cli("alert", "test").code == 1
    conn = shipstate.connect(home)
    conn.execute("UPDATE alert_events SET created_at = '2020-01-01T00:00:00.000000Z'")
    conn.close()
    shipping.ship_once(home)
    conn = shipstate.connect(home)
    assert conn.execute("SELECT count(*) FROM alert_events").fetchone()[0] == 1  # not delivered yet: kept
    conn.close()
    hook.up = True
    shipping.ship_once(home, force=True)
    conn = shipstate.connect(home)
    assert conn.execute("SELECT count(*) FROM alert_events").fetchone()[0] == 0
    conn.close()
    assert len(hook.bodies) == 1


def test_provider_that_died_with_its_supervisor_is_reported_at_the_next_start(home, cli, hook):
    """No supervisor saw it die (killed together, OOM under systemd): the next provider raises the alert."""
    import os
    import signal
    import subprocess
    import sys

    from starlette.testclient import TestClient

    from botctl.provider.app import create_app

    assert cli("init").code == 0
    assert cli("alert", "add", hook.url, "--secret-env", "BOTCTL_TEST_ALERT_SECRET").code == 0
    with TestClient(create_app(str(home.path), refresh_interval=3600)):
        pass  # a clean start and stop: nothing to report
    script = (
        "import os, signal, sys\nfrom starlette.testclient import TestClient\n"
        "from botctl.provider.app import create_app\n"
        "c = TestClient(create_app(sys.argv[1], refresh_interval=3600)); c.__enter__()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(home.path)], env=os.environ, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with TestClient(create_app(str(home.path), refresh_interval=3600)):
        pass
    assert cli("alert", "flush").code == 0
    alerts = _alerts(hook)
    assert [a["type"] for a in alerts] == ["provider.restarted"]
    assert alerts[0]["data"]["detected"].startswith("at start")
    assert (
        alerts[0]["data"]["previous_pid"] not in (None, os.getpid())
        and alerts[0]["data"]["exit_code"] is None
    )
