"""Hostile review, edge and provider findings: each test is the attack as it was reproduced.

Rate limits before any work and behind proxies, request ids and action names that would forge audit
lines, metrics series invented by visitors, parameters that slip past a schema, a vendor that drops a
filter, and ids whose existence a visitor could probe.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from botctld.clientip import ClientAddress
from cluster_kit import free_port, sh
from test_daemon import SITE_ORIGIN, _setup_home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def d(sandbox_server, tmp_path_factory):
    sandbox_server.reset()
    dm = _setup_home(
        tmp_path_factory.mktemp("hostile-edge"),
        sandbox_server,
        port=free_port(),
        daemon_args=("--ip-rate", "0", "--visitor-rate", "0", "--trust-proxy", "1"),
    )
    creds = sandbox_server.credentials()
    sh(
        dm.env,
        "connect",
        "calendly",
        "-w",
        "acme",
        "--sandbox",
        sandbox_server.url,
        "--access-token-stdin",
        input=creds["calendly"]["access_token"] + "\n",
    )
    yield dm
    sh(dm.env, "daemon", "stop", check=False)


def records_for(d, request_id: str) -> list[dict]:
    return [r for r in d.audit() if r.get("request_id") == request_id]


def raw_exchange(address, request: bytes) -> bytes:
    """One request as bytes (what a hostile client or edge sends, no client library in between)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(30)
        s.connect(address)
        s.sendall(request)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return raw


def to_provider(d, path: str, payload: dict) -> bytes:
    """Straight to the provider's socket, as code running in a compromised edge could."""
    sock_path = json.loads((d.home / "run" / "state.json").read_text())["socket"]
    body = json.dumps(payload).encode()
    return raw_exchange(
        sock_path,
        f"POST {path} HTTP/1.1\r\nHost: p\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )


# -- 6. rate limits: first, for everything, and per visitor behind a proxy ----------------------------------


def test_the_ip_bucket_comes_before_any_other_work(sandbox, tmp_path):
    """Unknown workspaces, wrong origins and preflights used to cost a provider round trip each, unlimited."""
    dm = _setup_home(tmp_path, sandbox, port=free_port(), daemon_args=("--ip-rate", "2"))
    try:
        attacks = {
            "unknown workspace": lambda: dm.http.get("/v1/workspaces/nope-nope/widget-config"),
            "wrong origin": lambda: dm.http.get(
                "/v1/workspaces/acme/actions", headers={"Origin": "https://evil.test"}
            ),
            "preflight": lambda: dm.http.options(
                "/v1/workspaces/acme/actions",
                headers={"Origin": SITE_ORIGIN, "Access-Control-Request-Method": "GET"},
            ),
        }
        for name, send in attacks.items():
            time.sleep(3.5)  # the bucket (burst 6 at 2/s) refills between kinds
            codes = [send().status_code for _ in range(60)]
            assert codes.count(429) >= 50, (name, codes)
        assert dm.http.get("/healthz").status_code == 200  # probes are never limited
        assert 'code="429"' in dm.metrics()
    finally:
        sh(dm.env, "daemon", "stop", check=False)


def test_behind_one_proxy_the_audit_names_the_visitor_not_the_proxy_nor_a_forged_entry(d):
    r = d.act("shopify.list_my_orders", token=d.token(), **{"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
    assert r.status_code == 200
    (rec,) = records_for(d, r.headers["x-request-id"])
    assert rec["detail"]["client_ip"] == "203.0.113.7"  # the entry our one proxy added, not the client's own


@pytest.mark.parametrize(
    "hops, cidrs, peer, xff, expected",
    [
        (0, (), "10.0.0.2", ["1.1.1.1"], "10.0.0.2"),  # no trust: the header means nothing
        (1, (), "10.0.0.2", ["6.6.6.6, 1.1.1.1"], "1.1.1.1"),  # the leftmost is the client's own invention
        (2, (), "10.0.0.2", ["6.6.6.6, 1.1.1.1, 10.0.0.9"], "1.1.1.1"),
        (1, (), "10.0.0.2", ["not-an-ip"], "10.0.0.2"),
        (0, ("10.0.0.0/8",), "10.0.0.2", ["6.6.6.6, 1.1.1.1, 10.0.0.9"], "1.1.1.1"),
        (0, ("10.0.0.0/8",), "192.0.2.1", ["1.1.1.1"], "192.0.2.1"),  # the peer is not our proxy
        (0, ("10.0.0.0/8", "::1/128"), "::1", ["2001:db8::5", "10.1.1.1"], "2001:db8::5"),
        (1, (), "10.0.0.2", ["[2001:db8::7]:4711"], "2001:db8::7"),
    ],
)
def test_client_address_resolution(hops, cidrs, peer, xff, expected):
    assert ClientAddress(hops, cidrs).resolve(peer, xff) == expected


def test_daemon_refuses_a_bad_proxy_network(d, tmp_path):
    env = {**d.env, "BOTCTL_HOME": str(tmp_path / "h")}
    sh(env, "workspace", "create", "x1")
    r = sh(
        env,
        "daemon",
        "start",
        "--port",
        str(free_port()),
        "--trust-proxy-cidr",
        "10.0.0.0/33",
        check=False,
    )
    assert r.returncode != 0 and "--trust-proxy-cidr" in r.stderr and "Traceback" not in r.stderr


# -- 13 and 5: what reaches the audit log as it was sent -------------------------------------------------


@pytest.mark.parametrize(
    "given",
    ["req_\u01c5\u01c5\u01c5\u01c5\u01c5\u01c5\u01c5\u01c5", "req_\x1b[2K\rok", "x" * 30, "req_" + "a" * 60],
)
def test_request_ids_of_another_shape_are_replaced(d, given):
    body = b'{"params": {}}'
    raw = raw_exchange(
        ("127.0.0.1", d.port),
        b"POST /v1/workspaces/acme/actions/calendly.available_times HTTP/1.1\r\n"
        b"Host: x\r\nConnection: close\r\nContent-Type: application/json\r\nX-Request-Id: "
        + given.encode("utf-8")
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body,
    )
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    rid = next(
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("x-request-id")
    )
    assert rid != given and rid.startswith("req_") and rid.isascii() and rid[4:].isalnum()
    if head.startswith("HTTP/1.1 400"):  # a bare CR in a header: the parser refuses the request outright
        assert not records_for(d, rid)
        return
    assert head.startswith("HTTP/1.1 200"), head
    assert len(records_for(d, rid)) == 1


def test_a_compromised_edge_cannot_write_ids_or_addresses_into_the_audit(d):
    raw = to_provider(
        d,
        "/v1/workspaces/acme/actions/calendly.available_times",
        {
            "params": {},
            "identity_token": None,
            "request_id": "req_\x1b]0;pwned\x07aaaaaaaa",
            "client_ip": "\x1b[2K1.2.3.4",
        },
    )
    assert b"pwned" not in raw and b"\\u001b" not in raw
    text = json.dumps(d.audit()[-3:])
    assert "pwned" not in text and "\\u001b" not in text


def test_action_names_that_would_forge_audit_lines_are_not_recorded_as_given(d):
    forged = "%1B%5B2K%0D999%20acme%20system%20stripe.refund%20ok"
    r = d.http.post(f"/v1/workspaces/acme/actions/{forged}", json={"params": {}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_action"
    (rec,) = records_for(d, r.headers["x-request-id"])
    assert rec["action"] is None and "\x1b" not in json.dumps(rec, ensure_ascii=False)
    assert rec["detail"]["requested_action"].startswith('"\\u001b[2K')  # kept, escaped
    # Through the edge a malformed workspace stops at the edge (unknown workspace); a compromised edge
    # sending it straight to the provider gets the same treatment as the action name.
    before = len(d.audit())
    assert (
        d.http.post(
            "/v1/workspaces/%1B%5D0%3Bx%07/actions/stripe.list_plans", json={"params": {}}
        ).status_code
        == 404
    )
    assert len(d.audit()) == before
    to_provider(d, "/v1/workspaces/%1B%5D0%3Bx%07/actions/stripe.list_plans", {"params": {}})
    (rec,) = d.audit()[before:]
    assert rec["workspace"] is None and rec["detail"]["requested_workspace"].startswith('"\\u001b]0')


# -- 8. metrics ----------------------------------------------------------------------------------------


def test_invented_action_names_add_no_metrics_series(d):
    for i in range(50):
        d.http.post(f"/v1/workspaces/acme/actions/made.up_{i}", json={"params": {}})
    m = d.metrics()
    assert "made.up_" not in m and 'action="unknown"' in m


# -- 10. parameters past the schema ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, params",
    [
        ("calendly.cancel_my_booking", {"booking_id": "abc\n"}),  # "$" before a final newline
        ("stripe.cancel_my_subscription", {"subscription_id": "sub_\u0663\u0664\n"}),
        ("zendesk.create_ticket", {"subject": "hi\x1b[2J", "description": "x"}),  # a control in free text
    ],
)
def test_parameters_with_control_characters_never_reach_the_vendor(d, action, params):
    before = len(d.audit())
    r = d.act(action, params, token=d.token())
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_params", r.text
    new = d.audit()[before:]
    assert [x["event"] for x in new] == ["action.run"]  # no action.started: nothing was sent


def test_line_breaks_in_free_text_are_still_fine(d):
    r = d.act(
        "zendesk.create_ticket",
        {"subject": "Late order", "description": "Line one.\nLine two."},
        token=d.token(),
    )
    assert r.status_code == 200, r.text


# -- 11. Calendly: ownership checked here, not left to the vendor's filter ---------------------------------


def test_calendly_bookings_stay_the_visitors_when_the_vendor_drops_the_filter(d):
    seed = d.sandbox.seed()
    mine = set(seed["calendly"]["ada@example.com"]["scheduled_events"])
    d.sandbox.configure(ignored_filters=["calendly.invitee_email"])
    try:
        r = d.act("calendly.list_my_bookings", {"include_canceled": True}, token=d.token())
    finally:
        d.sandbox.configure(ignored_filters=[])
    assert r.status_code == 200, r.text
    ids = {b["id"] for b in r.json()["result"]["bookings"]}
    assert ids == mine


# -- 16. not yours == does not exist, to a visitor ----------------------------------------------------------


def test_someone_elses_ticket_and_no_ticket_look_the_same(d):
    other = d.act("zendesk.get_my_ticket", {"ticket_id": 103}, token=d.token())  # Grace's
    missing = d.act("zendesk.get_my_ticket", {"ticket_id": 99999}, token=d.token())
    assert (other.status_code, other.json()["error"]) == (missing.status_code, missing.json()["error"])
    reasons = [records_for(d, r.headers["x-request-id"])[0]["reason"] for r in (other, missing)]
    assert reasons == ["forbidden", "not_found"]  # the operator still sees the difference
