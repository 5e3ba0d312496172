"""OAuth connect flows, library level: PKCE, state, the loopback listener, iss, the device flow.

Everything runs over real loopback HTTP against `InteropAS` (oauthlib) or a scripted device server;
the "browser" is an HTTP client started by the flow's UI hook. The device flow's timing is checked
with a fake clock, never with sleeps.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from botctl import oauth, workspaces
from botctl.connectors import registry
from botctl.secret import Secret
from test_oauth_as import (
    CLIENT_ID,
    CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    DeviceScript,
    FakeClock,
    InteropAS,
    browse,
)

CALENDLY = registry.get("calendly")
CONFIG = {"base_url_resolved": "https://api.calendly.com"}


@pytest.fixture
def ws(app):
    return workspaces.create(app, "acme", plan="pro")


@pytest.fixture
def peer():
    with InteropAS() as s:
        yield s


def app_cfg(peer: InteropAS, **settings: Any) -> oauth.OAuthApp:
    return oauth.effective_app(
        CALENDLY,
        source="global",
        client_id=CLIENT_ID,
        client_secret=Secret(CLIENT_SECRET),
        settings={**peer.app_settings(), "token_auth": "client_secret_basic", **settings},
        config=CONFIG,
    )


class BrowserUI(oauth.FlowUI):
    """Plays the user's browser: when the flow shows the URL, `action(url)` runs in a thread."""

    def __init__(self, action: Callable[[str], Any] = browse) -> None:
        self.action = action
        self.urls: list[str] = []
        self.result: Any = None
        self.thread: threading.Thread | None = None

    def show_url(self, url: str, *, opened: bool, mode: str) -> None:
        self.urls.append(url)

        def run() -> None:
            try:
                self.result = self.action(url)
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                self.result = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        assert self.thread is not None
        self.thread.join(10)
        return self.result


def connect(app, ws, cfg, ui, **kw):
    return asyncio.run(
        oauth.connect(
            app, ws, CALENDLY, CONFIG, cfg, mode=kw.pop("mode", "no_browser"), ui=ui, skip_check=True, **kw
        )
    )


def rows(home, sql):
    return sqlite3.connect(home.vault_db).execute(sql).fetchall()


def audit(app, event):
    from botctl.audit import AuditReader, Filters

    reader = AuditReader(app.home)
    try:
        return reader.latest(Filters(event=event), 1000)
    finally:
        reader.close()


def redirect_target(authorize_url: str) -> tuple[str, dict[str, str]]:
    q = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    return q["redirect_uri"], q


# -- PKCE and state -------------------------------------------------------------------------------------


def test_pkce_rfc7636_appendix_b_and_fresh_values():
    assert (
        oauth.s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    verifiers = {oauth.new_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", v) for v in verifiers)  # 32 random octets, unreserved set
    states = {oauth.new_state() for _ in range(50)}
    assert len(states) == 50 and all(len(s) >= 43 for s in states)  # 256 bits (≥ 128 required)


def test_authorize_url_carries_s256_challenge_and_state(peer):
    req = oauth.AuthRequest(app_cfg(peer), "http://127.0.0.1:4242/callback", CALENDLY.scopes)
    _, q = redirect_target(req.url)
    assert q["code_challenge_method"] == "S256" and q["code_challenge"] == oauth.s256(req.verifier)
    assert q["state"] == req.state and q["response_type"] == "code" and q["client_id"] == CLIENT_ID
    assert q["scope"] == " ".join(CALENDLY.scopes)
    shopify = oauth.effective_app(
        registry.get("shopify"),
        source="global",
        client_id="c",
        client_secret=Secret("s"),
        settings={},
        config={"shop": "acme"},
    )
    q2 = redirect_target(
        oauth.AuthRequest(shopify, "http://127.0.0.1:1/callback", ("read_orders", "read_customers")).url
    )[1]
    assert (
        "code_challenge" not in q2 and q2["scope"] == "read_orders,read_customers"
    )  # Shopify: no PKCE, commas
    assert shopify.authorize_url == "https://acme.myshopify.com/admin/oauth/authorize"


def test_state_is_single_use_and_checked_first(peer):
    req = oauth.AuthRequest(app_cfg(peer), "http://127.0.0.1:4242/callback", CALENDLY.scopes)
    with pytest.raises(oauth.CallbackRejected) as e:
        req.accept({"code": "c", "state": "nope"})
    assert e.value.code == "state_mismatch" and e.value.exit_code == 25
    with pytest.raises(oauth.CallbackRejected):
        req.accept({"code": "c"})  # missing state
    assert req.accept({"code": "c", "state": req.state}) == "c"
    with pytest.raises(oauth.CallbackRejected) as e:
        req.accept({"code": "c", "state": req.state})
    assert e.value.code == "state_replayed"
    with pytest.raises(oauth.CallbackRejected):
        oauth.parse_query("code=a&state=b&state=c")  # a repeated parameter is an injection attempt


def test_paste_parsing(peer):
    redirect = "http://127.0.0.1:4242/callback"
    assert oauth.parse_pasted(f"  {redirect}?code=abc&state=xyz\n", redirect) == {
        "code": "abc",
        "state": "xyz",
    }
    assert oauth.parse_pasted("?code=abc&state=xyz", redirect) == {"code": "abc", "state": "xyz"}
    for bad in (
        "http://127.0.0.1:4243/callback?code=a&state=b",
        "https://evil.example/callback?code=a&state=b",
        "http://127.0.0.1:4242/other?code=a&state=b",
        "",
    ):
        with pytest.raises(oauth.CallbackRejected):
            oauth.parse_pasted(bad, redirect)


# -- the browser flow against an independent (oauthlib) authorization server -----------------------------


def test_browser_flow_interop_end_to_end(home, app, ws, peer):
    ui = BrowserUI()
    result = connect(app, ws, app_cfg(peer), ui)
    page = ui.join()
    assert isinstance(page, httpx.Response) and page.status_code == 200
    assert "botctl is connected; you can close this tab" in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    redirect, q = redirect_target(ui.urls[0])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", redirect)
    assert q["code_challenge_method"] == "S256"
    conn = result.connection
    assert conn.auth == "oauth" and conn.status == "active" and conn.expires_at
    assert conn.oauth_config()["client_id"] == CLIENT_ID and conn.oauth_config()["issuer"] == peer.issuer
    assert set(conn.scopes) == set(CALENDLY.scopes)
    assert peer.token_requests == {"authorization_code": 1}
    fields = {r[0] for r in rows(home, "SELECT field FROM secrets")}
    assert fields == {"access_token", "refresh_token", "client_secret"}
    issued = peer.issued[0]
    for value in (issued["access_token"], issued["refresh_token"], CLIENT_SECRET):
        assert all(value.encode() not in p.read_bytes() for p in home.path.rglob("*") if p.is_file())
    rec = audit(app, "connection.created")[0]
    assert rec["detail"]["flow"] == "no_browser" and rec["detail"]["check"] == "skipped"
    assert any("skipped" in w for w in result.warnings)
    # The listener served exactly one callback and is gone: a replay cannot even connect.
    with pytest.raises(httpx.ConnectError):
        httpx.get(redirect + "?code=x&state=" + q["state"], timeout=2)


def test_public_client_with_pkce_only(app, ws, peer):
    cfg = oauth.effective_app(
        CALENDLY,
        source="global",
        client_id=PUBLIC_CLIENT_ID,
        client_secret=None,
        settings=peer.app_settings(),
        config=CONFIG,
    )
    assert cfg.token_auth == "none"
    ui = BrowserUI()
    result = connect(app, ws, cfg, ui)
    assert ui.join().status_code == 200 and result.connection.status == "active"


def test_wrong_path_gets_404_and_the_listener_keeps_waiting(app, ws, peer):
    seen: list[int] = []

    def lost_browser(url: str) -> httpx.Response:
        redirect, _ = redirect_target(url)
        origin = redirect.rsplit("/", 1)[0]
        for path in ("/", "/favicon.ico", "/callback/extra", "/CALLBACK"):
            seen.append(httpx.get(origin + path, timeout=5).status_code)
        seen.append(httpx.post(redirect, timeout=5).status_code)  # right path, wrong method
        return browse(url)

    ui = BrowserUI(lost_browser)
    assert connect(app, ws, app_cfg(peer), ui).connection.status == "active"
    assert seen == [404, 404, 404, 404, 405]
    assert ui.join().status_code == 200


def test_only_http_urls_are_ever_opened():
    for url in ("javascript:alert(1)", "file:///etc/passwd", "data:text/html,hi", "ssh://host"):
        assert oauth.open_browser(url) is False


def test_listener_binds_127_0_0_1_on_an_ephemeral_port():
    async def probe() -> tuple[str, int, int]:
        a = await oauth.LoopbackListener().start()
        b = await oauth.LoopbackListener().start()
        host = a._server.sockets[0].getsockname()[0]
        ports = (a.port, b.port)
        await a.close()
        await b.close()
        return host, *ports

    host, p1, p2 = asyncio.run(probe())
    assert host == "127.0.0.1" and p1 != p2 and p1 > 1024


def _assert_failed(home, app, peer, *, code: str, exit_code: int):
    assert rows(home, "SELECT count(*) FROM connections") == [(0,)]
    assert rows(home, "SELECT count(*) FROM secrets") == [(0,)]
    failed = audit(app, "connection.failed")
    assert len(failed) == 1 and failed[0]["reason"] == code, failed
    assert failed[0]["outcome"] in ("denied", "error")


# A request to the loopback listener with another state no longer ends the login (any web page could
# send one): it is answered 400 and the listener keeps waiting. The forged-state and replayed-response
# cases are in tests/test_identity_hostile.py (test_a_web_page_cannot_end_the_login,
# test_replayed_response_of_an_earlier_login_is_ignored).


def test_listener_timeout(home, app, ws, peer):
    ui = BrowserUI(lambda url: None)
    with pytest.raises(oauth.AuthorizationTimeout) as e:
        connect(app, ws, app_cfg(peer), ui, timeout=0.3)
    assert e.value.exit_code == 26 and "0.3 s" in e.value.message
    redirect, _ = redirect_target(ui.urls[0])
    with pytest.raises(httpx.ConnectError):  # cleaned up
        httpx.get(redirect, timeout=2)
    _assert_failed(home, app, peer, code="timeout", exit_code=26)


def test_access_denied_ends_cleanly(home, app, ws, peer):
    peer.deny = True
    ui = BrowserUI()
    with pytest.raises(oauth.AuthorizationDenied) as e:
        connect(app, ws, app_cfg(peer), ui)
    assert e.value.exit_code == 24 and "The user said no" in e.value.message
    page = ui.join()
    assert page.status_code == 400 and "could not connect" in page.text
    _assert_failed(home, app, peer, code="access_denied", exit_code=24)


def test_iss_mismatch_is_refused(home, app, ws, peer):
    peer.wrong_iss = True
    with pytest.raises(oauth.CallbackRejected) as e:
        connect(app, ws, app_cfg(peer), BrowserUI())
    assert e.value.code == "iss_mismatch"
    assert peer.token_requests == {}
    _assert_failed(home, app, peer, code="iss_mismatch", exit_code=25)


def test_missing_iss_refused_when_the_server_promises_it(home, app, ws, peer):
    peer.send_iss = False  # the redirect carries no iss ...
    cfg = oauth.apply_metadata(
        app_cfg(peer, metadata_url=None),
        {**peer.metadata(), "issuer": peer.issuer, "authorization_response_iss_parameter_supported": True},
    )
    with pytest.raises(oauth.CallbackRejected) as e:  # ... but the metadata says it would
        connect(app, ws, cfg, BrowserUI())
    assert e.value.code == "iss_mismatch"


def test_invalid_client_is_a_clear_rejection(home, app, ws, peer):
    cfg = oauth.effective_app(
        CALENDLY,
        source="global",
        client_id=CLIENT_ID,
        client_secret=Secret("wrong-secret"),
        settings={**peer.app_settings(), "token_auth": "client_secret_basic"},
        config=CONFIG,
    )
    with pytest.raises(oauth.CredentialRejected) as e:
        connect(app, ws, cfg, BrowserUI())
    assert e.value.exit_code == 20 and e.value.code == "invalid_client"
    assert "wrong-secret" not in e.value.message
    _assert_failed(home, app, peer, code="invalid_client", exit_code=20)


def test_unreachable_token_endpoint_is_transient(home, app, ws, peer):
    cfg = app_cfg(peer, token_url="http://127.0.0.1:9/token")
    with pytest.raises(oauth.Transient) as e:
        connect(app, ws, cfg, BrowserUI())
    assert e.value.exit_code == 22
    _assert_failed(home, app, peer, code="upstream_unavailable", exit_code=22)


# -- the device flow (RFC 8628), timed with a fake clock --------------------------------------------------


def _device_cfg(script: DeviceScript) -> oauth.OAuthApp:
    return oauth.effective_app(
        CALENDLY,
        source="global",
        client_id=PUBLIC_CLIENT_ID,
        client_secret=None,
        settings={"token_url": script.url + "/token", "device_url": script.url + "/device"},
        config=CONFIG,
    )


class DeviceUI(oauth.FlowUI):
    def __init__(self) -> None:
        self.codes: list[tuple[str, str, str | None]] = []

    def show_device_code(self, user_code: str, verification_uri: str, complete_uri: str | None) -> None:
        self.codes.append((user_code, verification_uri, complete_uri))


def run_device(script: DeviceScript, clock: FakeClock) -> oauth.Authorization:
    ui = DeviceUI()
    try:
        return asyncio.run(
            oauth.device_flow(
                _device_cfg(script), ui=ui, vendor_name="Calendly", clock=clock, sleep=clock.sleep
            )
        )
    finally:
        assert ui.codes and ui.codes[0][:2] == ("WDJB-MJHT", "https://as.example/device")


PENDING = (400, {"error": "authorization_pending"})
SLOW = (400, {"error": "slow_down"})
TOKEN = (
    200,
    {"access_token": "dev-at", "refresh_token": "dev-rt", "token_type": "Bearer", "expires_in": 3600},
)


def test_device_flow_default_interval_pending_and_sticky_slow_down():
    clock = FakeClock()
    with DeviceScript(clock, [PENDING, PENDING, SLOW, PENDING, TOKEN], {"interval": None}) as script:
        auth = run_device(script, clock)
    assert auth.tokens.access_token.reveal() == "dev-at" and auth.flow == "device"
    assert clock.sleeps == [5, 5, 5, 10, 10]  # default 5 s; slow_down adds 5 s for every later poll
    assert script.polls == [1005, 1010, 1015, 1025, 1035]


def test_device_flow_server_interval_and_repeated_slow_down():
    clock = FakeClock()
    with DeviceScript(clock, [SLOW, SLOW, TOKEN], {"interval": 7}) as script:
        run_device(script, clock)
    assert clock.sleeps == [7, 12, 17]


def test_device_flow_access_denied_stops_polling():
    clock = FakeClock()
    with DeviceScript(clock, [PENDING, (400, {"error": "access_denied"}), TOKEN]) as script:
        with pytest.raises(oauth.AuthorizationDenied) as e:
            run_device(script, clock)
    assert e.value.exit_code == 24 and len(script.polls) == 2


def test_device_flow_expired_token_stops_polling():
    clock = FakeClock()
    with DeviceScript(clock, [PENDING, (400, {"error": "expired_token"}), TOKEN]) as script:
        with pytest.raises(oauth.AuthorizationTimeout) as e:
            run_device(script, clock)
    assert e.value.code == "expired_token" and e.value.exit_code == 26 and len(script.polls) == 2


def test_device_flow_stops_at_expires_in_without_polling_past_it():
    clock = FakeClock()
    with DeviceScript(clock, [], {"expires_in": 20, "interval": 5}) as script:  # pending forever
        with pytest.raises(oauth.AuthorizationTimeout):
            run_device(script, clock)
    assert script.polls == [1005, 1010, 1015] and clock.now < 1020


def test_device_flow_through_connect_auto_when_no_browser(home, app, ws, monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(var, raising=False)
    clock = FakeClock()
    with DeviceScript(clock, [PENDING, TOKEN]) as script:
        result = asyncio.run(
            oauth.connect(
                app,
                ws,
                CALENDLY,
                CONFIG,
                _device_cfg(script),
                mode="auto",
                ui=DeviceUI(),
                skip_check=True,
                clock=clock,
                sleep=clock.sleep,
            )
        )
    assert result.flow == "device" and result.connection.status == "active"
    text = " ".join(str(r) for r in audit(app, "connection.created"))
    assert "WDJB-MJHT" not in text and "dev-code-1" not in text and "dev-at" not in text  # codes never logged
