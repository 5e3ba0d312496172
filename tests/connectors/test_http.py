"""The vendor HTTP client: pinning, credential injection, retries, error mapping, scrubbing.

Most cases run against the sandbox and its fault injection. A few need a vendor that misbehaves
in ways the sandbox does not (echoing the credential, redirecting): a tiny stdlib HTTP server
plays that vendor.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from botctl.connectors import registry
from botctl.connectors.base import ActionError
from botctl.connectors.http import build_client, parse_retry_after
from botctl.secret import Secret

from .conftest import CONFIG

SECRET = "zd-very-secret-token-0123456789"


# --- a misbehaving vendor ------------------------------------------------------------------------


class Vendor(BaseHTTPRequestHandler):
    hits: list[tuple[str, str, dict[str, str]]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _reply(self, status, body=b"", headers=None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        Vendor.hits.append((self.command, self.path, dict(self.headers)))
        path = self.path.split("?")[0]
        auth = self.headers.get("authorization", "")
        if path == "/echo":
            decoded = ""
            if auth.lower().startswith("basic "):
                decoded = base64.b64decode(auth.split(" ", 1)[1]).decode()
            msg = f"Invalid credentials: {auth} ({decoded}) token={SECRET}"
            self._reply(403, json.dumps({"error": "Forbidden", "description": msg}).encode())
        elif path == "/echo401":
            self._reply(401, json.dumps({"message": f"bad token {SECRET}"}).encode())
        elif path == "/echo400":
            self._reply(400, json.dumps({"error": {"message": f"No such key: '{SECRET}'"}}).encode())
        elif path == "/redirect":
            self._reply(302, b"", {"Location": "https://elsewhere.example/"})
        elif path == "/stripe-no-retry":
            self._reply(500, b"{}", {"Stripe-Should-Retry": "false"})
        elif path == "/stripe-retry-409":
            n = sum(1 for h in Vendor.hits if h[1].startswith("/stripe-retry-409"))
            if n == 1:
                self._reply(409, b'{"error":{"message":"lock timeout"}}', {"Stripe-Should-Retry": "true"})
            else:
                self._reply(200, b'{"ok":true}')
        elif path == "/always-500":
            self._reply(500, b'{"error":"boom"}')
        elif path == "/date-429":
            when = email.utils.formatdate(time.time() + 5, usegmt=True)
            self._reply(429, b"Too many requests", {"Retry-After": when}, ctype="text/plain")
        elif path == "/long-429":
            self._reply(429, b"{}", {"Retry-After": "120"})
        elif path == "/html":
            self._reply(200, b"<html>not json</html>", ctype="text/html")
        else:
            self._reply(200, b'{"ok":true}')

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@pytest.fixture(scope="module")
def vendor_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Vendor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def vendor(vendor_server):
    Vendor.hits = []
    return vendor_server


def call(name, base_url, method, path, *, credential=None, idempotent=True, headers=None, waits=None, **kw):
    """One request through a fresh client; returns (response or ActionError, waits)."""
    waits = [] if waits is None else waits

    async def sleep(s):
        waits.append(s)

    async def go():
        client = build_client(
            registry.get(name),
            CONFIG[name],
            credential or {"access_token": Secret(SECRET), "api_key": Secret(SECRET)},
            base_url=base_url,
            idempotent=idempotent,
            sleep=sleep,
            **kw,
        )
        async with client:
            try:
                return await client.request(method, path, headers=headers)
            except ActionError as e:
                return e

    return asyncio.run(go()), waits


# --- pinning -------------------------------------------------------------------------------------


def test_absolute_url_elsewhere_is_refused_before_a_byte_is_sent(h):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        for url in (
            f"http://127.0.0.1:{port}/steal",
            "https://evil.example/steal",
            f"{h.sb.url}/stripe/v1/customers",
        ):
            result, _ = call("zendesk", h.base_url("zendesk"), "GET", url)
            assert isinstance(result, ActionError) and result.code == "upstream_error", url
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
    # Not even the sandbox (same host, other vendor's prefix) saw a request.
    assert "stripe" not in h.sb.stats()["vendors"]


@pytest.mark.parametrize(
    "path", ["/api/v2/../../../stripe/v1/customers", "/api/%2e%2e/%2e%2e/stripe", "/api/%2E/x"]
)
def test_dot_segments_cannot_leave_the_base_path(h, path):
    result, _ = call("zendesk", h.base_url("zendesk"), "GET", path)
    assert isinstance(result, ActionError) and result.code == "upstream_error"
    assert h.sb.stats()["total"] == 0


@pytest.mark.parametrize("base", ["http://vendor.example", "http://127.evil.example", "ftp://127.0.0.1/"])
def test_plain_http_is_refused_except_on_loopback(base):
    with pytest.raises(ActionError):
        build_client(registry.get("zendesk"), {}, {"access_token": Secret("x")}, base_url=base)


def test_loopback_http_is_allowed():
    for base in ("http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1"):
        asyncio.run(
            build_client(registry.get("zendesk"), {}, {"access_token": Secret("x")}, base_url=base).aclose()
        )


def test_redirect_is_an_error_and_not_followed(vendor):
    result, _ = call("zendesk", vendor, "GET", "/redirect")
    assert isinstance(result, ActionError) and result.code == "upstream_error"
    assert "redirect" in result.message
    assert [h[1] for h in Vendor.hits] == ["/redirect"]


def test_client_settings():
    client = build_client(
        registry.get("zendesk"), {"subdomain": "acme"}, {"access_token": Secret("x")}, timeout=3
    )
    t = client.timeout
    assert (t.connect, t.read, t.write, t.pool) == (3, 3, 3, 3)
    assert client.follow_redirects is False
    assert str(client.base_url) == "https://acme.zendesk.com"
    asyncio.run(client.aclose())


# --- credential injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "credential", "expect"),
    [
        ("zendesk", {"access_token": Secret("tok")}, ("authorization", "Bearer tok")),
        ("calcom", {"api_key": Secret("cal_test_k")}, ("authorization", "Bearer cal_test_k")),
        (
            "freshdesk",
            {"api_key": Secret("fdkey")},
            ("authorization", "Basic " + base64.b64encode(b"fdkey:X").decode()),
        ),
        (
            "woocommerce",
            {"api_key": Secret("ck_1"), "api_secret": Secret("cs_2")},
            ("authorization", "Basic " + base64.b64encode(b"ck_1:cs_2").decode()),
        ),
        ("shopify", {"access_token": Secret("shpat_x")}, ("x-shopify-access-token", "shpat_x")),
    ],
)
def test_auth_styles_on_the_wire_only(vendor, name, credential, expect):
    result, _ = call(
        name, vendor, "GET", "/ok", credential=credential, headers={"Authorization": "Bearer forged"}
    )
    assert result.status_code == 200
    sent = {k.lower(): v for k, v in Vendor.hits[-1][2].items()}
    assert sent[expect[0]] == expect[1]
    # The handler's view of the request never holds the credential.
    assert "x-shopify-access-token" not in result.request.headers
    assert result.request.headers.get("authorization") in (None, "Bearer forged")


def test_default_headers_are_sent_and_overridable(vendor):
    result, _ = call("calcom", vendor, "GET", "/ok", credential={"api_key": Secret("cal_test_k")})
    assert Vendor.hits[-1][2]["cal-api-version"] == "2024-08-13"
    call(
        "calcom",
        vendor,
        "GET",
        "/ok",
        credential={"api_key": Secret("cal_test_k")},
        headers={"cal-api-version": "2024-09-04"},
    )
    assert Vendor.hits[-1][2]["cal-api-version"] == "2024-09-04"


# --- scrubbing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("zendesk", {"access_token": Secret(SECRET)}),
        ("freshdesk", {"api_key": Secret(SECRET)}),
        ("woocommerce", {"api_key": Secret(SECRET), "api_secret": Secret("cs_another_secret_value")}),
        ("shopify", {"access_token": Secret(SECRET)}),
    ],
)
@pytest.mark.parametrize("path", ["/echo", "/echo401", "/echo400"])
def test_credentials_echoed_by_the_vendor_are_scrubbed(vendor, name, credential, path):
    result, _ = call(name, vendor, "GET", path, credential=credential)
    assert isinstance(result, ActionError)
    text = result.message + repr(result) + str(result)
    assert SECRET not in text and "cs_another_secret_value" not in text
    for value in credential.values():
        assert base64.b64encode(f"{value.reveal()}:X".encode()).decode() not in text
    basic = base64.b64encode(f"{SECRET}:cs_another_secret_value".encode()).decode()
    assert basic not in text
    if path == "/echo":
        assert "[redacted]" in result.message and result.code == "missing_scope"
    if path == "/echo400":
        assert result.code == "invalid_params" and "[redacted]" in result.message


# --- retries and error mapping ---------------------------------------------------------------------


def test_read_survives_two_500s(h):
    h.sb.fault("zendesk", "500", count=2)
    waits = []
    result, _ = call("zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json",
                     credential=h.credential("zendesk"), waits=waits)  # fmt: skip
    assert result.status_code == 200
    assert len(waits) == 2 and all(0 < w <= 8 for w in waits)


@pytest.mark.parametrize("kind", ["502", "503", "reset", "malformed_json"])
def test_reads_retry_transient_faults(h, kind):
    h.sb.fault("zendesk", kind, count=1)
    result, waits = call("zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json",
                         credential=h.credential("zendesk"))  # fmt: skip
    assert not isinstance(result, ActionError), result
    assert result.json()["user"]["id"] and len(waits) == 1


def test_persistent_5xx_is_upstream_error(h):
    h.sb.fault("zendesk", "503", count=5)
    result, waits = call("zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json",
                         credential=h.credential("zendesk"))  # fmt: skip
    assert (
        isinstance(result, ActionError) and result.code == "upstream_error" and result.upstream_status == 503
    )
    assert len(waits) == 2


def test_persistent_malformed_json_is_upstream_error(h):
    h.sb.fault("zendesk", "malformed_json", count=5)
    result, _ = call("zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json",
                     credential=h.credential("zendesk"))  # fmt: skip
    assert (
        isinstance(result, ActionError) and result.code == "upstream_error" and "malformed" in result.message
    )


def test_non_idempotent_write_is_not_retried(h):
    h.sb.fault("zendesk", "500", count=1, method="POST")
    result, waits = call("zendesk", h.base_url("zendesk"), "POST", "/api/v2/tickets.json",
                         credential=h.credential("zendesk"), idempotent=False)  # fmt: skip
    # The vendor may have created it before failing: not retried, and not "try again" either.
    assert (
        isinstance(result, ActionError) and result.code == "outcome_unknown" and result.upstream_status == 500
    )
    assert waits == []


def test_429_retry_after_is_honoured(h):
    h.sb.fault("zendesk", "429", count=1, retry_after=4)
    result, waits = call(
        "zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json", credential=h.credential("zendesk")
    )
    assert result.status_code == 200 and len(waits) == 1 and 4 <= waits[0] <= 4.5


def test_429_exhausted_is_rate_limited_with_retry_after(h):
    h.sb.fault("zendesk", "429", count=5, retry_after=2)
    result, waits = call(
        "zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json", credential=h.credential("zendesk")
    )
    assert isinstance(result, ActionError) and result.code == "rate_limited"
    assert result.retry_after == 2 and len(waits) == 2


def test_429_longer_than_the_cap_gives_up_at_once(vendor):
    result, waits = call("zendesk", vendor, "GET", "/long-429")
    assert isinstance(result, ActionError) and result.code == "rate_limited"
    assert result.retry_after == 120 and waits == []
    assert "120" in result.message


def test_retry_after_as_http_date(vendor):
    result, waits = call("zendesk", vendor, "GET", "/date-429", max_retries=1)
    assert isinstance(result, ActionError) and result.code == "rate_limited"
    assert len(waits) == 1 and 3 <= waits[0] <= 6.5


def test_parse_retry_after():
    assert parse_retry_after("3") == 3
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = time.time()
    assert 9 <= parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now=now) <= 10
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0


def test_stripe_should_retry_false_stops_retries(vendor):
    result, waits = call("stripe", vendor, "GET", "/stripe-no-retry")
    assert isinstance(result, ActionError) and result.code == "upstream_error"
    assert waits == [] and len(Vendor.hits) == 1


def test_stripe_should_retry_true_retries_a_409(vendor):
    result, waits = call(
        "stripe", vendor, "POST", "/stripe-retry-409", idempotent=False, headers={"Idempotency-Key": "k1"}
    )
    assert result.status_code == 200 and len(waits) == 1
    assert [h[2]["Idempotency-Key"] for h in Vendor.hits] == ["k1", "k1"]


def test_write_without_key_is_not_retried_and_with_key_is(vendor):
    result, waits = call("zendesk", vendor, "POST", "/always-500", idempotent=False)
    assert isinstance(result, ActionError) and len(Vendor.hits) == 1
    result, waits = call(
        "zendesk", vendor, "POST", "/always-500", idempotent=False, headers={"Idempotency-Key": "k"}
    )
    assert isinstance(result, ActionError) and len(Vendor.hits) == 4 and len(waits) == 2


def test_hang_is_a_timeout(h):
    h.sb.fault("zendesk", "hang", count=3, hang_seconds=5)
    started = time.monotonic()
    result, waits = call("zendesk", h.base_url("zendesk"), "GET", "/api/v2/users/me.json",
                         credential=h.credential("zendesk"), timeout=0.3, max_retries=1)  # fmt: skip
    assert isinstance(result, ActionError) and result.code == "upstream_timeout"
    assert len(waits) == 1 and time.monotonic() - started < 4


def test_connection_refused_is_upstream_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result, waits = call("zendesk", f"http://127.0.0.1:{port}", "GET", "/x")
    assert isinstance(result, ActionError) and result.code == "upstream_error"
    assert len(waits) == 2  # nothing was sent, so even a write could retry


def test_status_mapping(h):
    base = h.base_url("zendesk")
    bad = {"access_token": Secret("zd-wrong")}
    result, _ = call("zendesk", base, "GET", "/api/v2/tickets/101.json", credential=bad)
    assert result.code == "needs_reauth" and result.upstream_status == 401
    result, _ = call("zendesk", base, "GET", "/api/v2/tickets/99999.json", credential=h.credential("zendesk"))
    assert result.code == "not_found"
    limited = h.credential("zendesk", limited=True)
    result, _ = call("zendesk", base, "POST", "/api/v2/tickets.json", credential=limited, idempotent=False)
    assert result.code == "missing_scope" and "lacks permission" in result.message


def test_text_body_is_not_json(vendor):
    result, _ = call("zendesk", vendor, "GET", "/html")
    assert result.status_code == 200
    from botctl.connectors._common import body

    with pytest.raises(ActionError) as e:
        body(result, "Zendesk")
    assert e.value.code == "upstream_error"


def test_refused_write_is_an_error_not_an_unknown_outcome(h):
    """A 4xx/429 means the vendor did nothing: a plain error, never outcome_unknown."""
    h.sb.fault("zendesk", "429", count=5, method="POST")
    result, _ = call("zendesk", h.base_url("zendesk"), "POST", "/api/v2/tickets.json",
                     credential=h.credential("zendesk"), idempotent=False)  # fmt: skip
    assert isinstance(result, ActionError) and result.code == "rate_limited"


def test_idempotent_write_failure_stays_upstream_error(h):
    """Repeating an idempotent change is harmless: the usual code, the visitor may retry."""
    h.sb.fault("zendesk", "500", count=5, method="POST")
    result, _ = call("zendesk", h.base_url("zendesk"), "POST", "/api/v2/tickets.json",
                     credential=h.credential("zendesk"), idempotent=True)  # fmt: skip
    assert isinstance(result, ActionError) and result.code == "upstream_error"
