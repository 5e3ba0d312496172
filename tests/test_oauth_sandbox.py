"""Every OAuth flow end to end against the sandbox's authorization server (authlib-based): the four
vendors connect (browser, --no-browser, --paste, device where offered), refresh under concurrency,
survive or fail cleanly on `rotate_then_fail`, act, and revoke on disconnect.

Skipped when the running sandbox has no OAuth server (older sandbox).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from botctl import connections, oauth, workspaces
from botctl.actions import run_action
from botctl.connectors import registry
from botctl.connectors.base import Visitor
from botctl.sandbox.vendors import get as sandbox_vendor
from test_oauth_as import browse
from test_oauth_cli import _read_url, _spawn, fake_browser_env
from test_oauth_flows import BrowserUI, audit

OAUTH = [c.name for c in registry.all_connectors() if c.auth == "oauth"]
# The settings reaching the sandbox's seeded tenant, as each sandbox vendor declares them.
SETTINGS = {name: dict(sandbox_vendor(name).connect_config) for name in OAUTH}
# Per connector, its first read of the visitor's own data that needs no parameter.
ACTION = {
    c.name: next(
        f"{c.name}.{a.name}"
        for a in c.actions
        if a.customer_specific and a.idempotent and not a.params.get("required")
    )
    for c in registry.all_connectors()
    if c.name in OAUTH
}
ADA = Visitor(sub="u-ada", email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def sb(sandbox):
    if "oauth" not in sandbox.credentials().get("calendly", {}):
        pytest.skip("this sandbox has no OAuth authorization server yet")
    sandbox.configure(auto_approve=True, device_interval=1)
    return sandbox


@pytest.fixture
def ws(app):
    return workspaces.create(app, "acme", plan="pro")


def lib_connect(app, ws, sb, name: str, ui=None) -> connections.Connection:
    connector = registry.get(name)
    config = connections.resolve_config(connector, SETTINGS[name], sb.url)
    cfg = asyncio.run(oauth.app_for(app, ws, connector, config, sandbox=sb.url))
    ui = ui or BrowserUI(browse)
    result = asyncio.run(oauth.connect(app, ws, connector, config, cfg, mode="no_browser", ui=ui, timeout=20))
    return result.connection


def token_of(app, ws, conn) -> str:
    return connections.credential(app, ws, conn)["access_token"].reveal()


@pytest.mark.parametrize("name", OAUTH)
def test_vendor_connects_acts_refreshes_and_revokes(app, ws, sb, name):
    conn = lib_connect(app, ws, sb, name)
    connector = registry.get(name)
    assert conn.status == "active" and conn.account_label and conn.expires_at
    assert set(connector.scopes) <= set(conn.scopes) or not [
        s for s in connector.scopes if s not in conn.scopes
    ]
    assert sb.stats()["token_grants"][name] == {"authorization_code": 1}
    assert asyncio.run(run_action(app, "acme", ACTION[name], visitor=ADA, params={}))["ok"]
    first = token_of(app, ws, conn)
    refreshed = asyncio.run(oauth.refresh(app, ws, conn, force=True))
    assert token_of(app, ws, refreshed) != first
    assert sb.stats()["token_grants"][name]["refresh_token"] == 1
    assert asyncio.run(run_action(app, "acme", ACTION[name], visitor=ADA, params={}))["ok"]
    result = asyncio.run(oauth.revoke(app, ws, refreshed, connector))
    assert result["revoked"] == "yes", result
    assert result["method"] == ("vendor" if connector.revoke else "rfc7009")
    assert sb.state.tokens.check(name, token_of(app, ws, refreshed)).status != "ok"


def test_sandbox_expired_token_refreshed_once_for_200_callers(app, ws, sb):
    conn = lib_connect(app, ws, sb, "hubspot")
    sb.expire_oauth_tokens("hubspot")
    app.vault.conn.execute(
        "UPDATE connections SET expires_at = ? WHERE id = ?",
        (connections.epoch_to_iso(time.time() - 1), conn.id),
    )
    expired = connections.get(app.vault.conn, ws, "hubspot")

    async def herd():
        fresh = await asyncio.gather(*(oauth.ensure_fresh(app, ws, expired) for _ in range(200)))
        acted = await asyncio.gather(
            *(run_action(app, "acme", "hubspot.get_my_contact", visitor=ADA, params={}) for _ in range(10))
        )
        return fresh, acted

    fresh, acted = asyncio.run(herd())
    assert {c.token_generation for c in fresh} == {expired.token_generation + 1}
    assert all(r["ok"] for r in acted)
    assert sb.stats()["token_grants"]["hubspot"]["refresh_token"] == 1


@pytest.mark.parametrize("name, survives", [("calendly", False), ("shopify", True)])
def test_sandbox_rotate_then_fail(app, ws, sb, name, survives):
    conn = lib_connect(app, ws, sb, name)
    token_path = urlsplit(sb.credentials()[name]["oauth"]["token_url"]).path
    sb.fault(name, "rotate_then_fail", path=token_path)
    with pytest.raises(oauth.Transient):
        asyncio.run(oauth.refresh(app, ws, conn, force=True))
    assert connections.get(app.vault.conn, ws, name).refresh_state == "unknown"
    if survives:  # Shopify keeps the old refresh token until its replacement is first used
        after = asyncio.run(oauth.refresh(app, ws, conn, force=True))
        assert after.status == "active" and after.refresh_state is None
        assert asyncio.run(run_action(app, "acme", ACTION[name], visitor=ADA, params={}))["ok"]
    else:  # the stored token is sent once more; invalid_grant → needs_reauth, no loop
        with pytest.raises(oauth.NeedsReauth):
            asyncio.run(oauth.refresh(app, ws, conn, force=True))
        assert connections.get(app.vault.conn, ws, name).status == "needs_reauth"
        with pytest.raises(oauth.NeedsReauth):  # no loop: refused here, nothing sent
            asyncio.run(oauth.refresh(app, ws, conn, force=True))
        sent = [r for r in sb.stats()["requests"] if r["method"] == "POST" and r["path"] == token_path]
        assert len(sent) == 3, sent  # the code exchange, the lost refresh, the one retry


def test_sandbox_consent_page_deny(app, ws, sandbox):
    if "oauth" not in sandbox.credentials().get("calendly", {}):
        pytest.skip("this sandbox has no OAuth authorization server yet")
    sandbox.configure(auto_approve=False)

    def deny(url: str) -> httpx.Response:
        hop = sandbox.consent(url, decision="deny")
        return httpx.get(hop.headers["location"], timeout=5)

    with pytest.raises(oauth.AuthorizationDenied):
        lib_connect(app, ws, sandbox, "calendly", BrowserUI(deny))
    assert [r["reason"] for r in audit(app, "connection.failed")] == ["access_denied"]


def test_sandbox_consent_page_approve(app, ws, sandbox):
    if "oauth" not in sandbox.credentials().get("calendly", {}):
        pytest.skip("this sandbox has no OAuth authorization server yet")
    sandbox.configure(auto_approve=False)

    def approve(url: str) -> httpx.Response:
        hop = sandbox.consent(url, decision="approve")
        return httpx.get(hop.headers["location"], timeout=5)

    assert lib_connect(app, ws, sandbox, "zendesk", BrowserUI(approve)).status == "active"


# -- the CLI, end to end --------------------------------------------------------------------------------


def test_cli_browser_flow_and_disconnect(cli, sb, tmp_path, botctl_proc):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    env, page = fake_browser_env(tmp_path)
    r = botctl_proc("connect", "zendesk", "-w", "acme", "--sandbox", sb.url, "--subdomain", "acme", env=env)
    assert r.code == 0, r.err
    assert "connected zendesk in acme as" in r.err and "browser flow" in r.err
    assert open(page).read().startswith("200")
    r = cli(
        "actions", "run", "zendesk.list_my_tickets", "-w", "acme", "--as-email", "ada@example.com", "--json"
    )
    assert r.code == 0, r.err
    r = cli("connections", "refresh", "zendesk", "-w", "acme")
    assert r.code == 0, r.err
    r = cli("disconnect", "zendesk", "-w", "acme", "--yes", "--json")
    assert r.code == 0 and r.json()["revoked"] == "yes", r.out + r.err


def test_cli_no_browser_flow(cli, sb):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    proc = _spawn("connect", "hubspot", "-w", "acme", "--sandbox", sb.url, "--no-browser")
    assert browse(_read_url(proc)).status_code == 200
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "no-browser flow" in err


def test_cli_paste_flow(cli, sb):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    proc = _spawn(
        "connect", "shopify", "-w", "acme", "--sandbox", sb.url, "--shop", "acme", "--paste", stdin=True
    )
    url = _read_url(proc)
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    hop = browse(url, stop_before=redirect)
    _, err = proc.communicate(hop.headers["location"] + "\n", timeout=30)
    assert proc.returncode == 0, err
    assert "paste flow" in err
    assert cli("connections", "list", "--json").json()[0]["status"] == "active"


def test_cli_device_flow(cli, sb):
    assert cli("workspace", "create", "acme", "--plan", "pro").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", "connect", "hubspot", "-w", "acme", "--sandbox", sb.url, "--device"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    code = None
    deadline = time.time() + 20
    while code is None and time.time() < deadline:
        found = re.search(r"enter the code: (\S+)", proc.stderr.readline())
        code = found.group(1) if found else None
    assert code, "no user code printed"
    sb.approve_device(code)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "device flow" in err
    assert sb.stats()["token_grants"]["hubspot"] == {"device_code": 1}
