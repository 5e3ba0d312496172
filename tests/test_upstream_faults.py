"""Upstream faults end to end (issue #8): the vendor sandbox's fault switch behind a real daemon.

429 with and without `Retry-After`, 500/502/503, hangs past the client timeout, connection resets,
malformed JSON, writes whose answer is lost (`write_then_reset`, `rotate_then_fail`), and a token
endpoint that rotates the refresh token and then fails. Every case checks, over the edge's HTTP API:

* the stable code and HTTP status the visitor gets, and a body with nothing of the vendor in it
  (no vendor error text or ids, no HTML, no URLs, no credentials, no traceback);
* exactly one `action.run` audit record for the request id, with outcome and reason, whose
  `upstream_statuses` are what the sandbox answered;
* how often the sandbox saw the faulted request: retries only where they are safe (reads, writes
  with an Idempotency-Key, and 429s, which the vendor refused before doing anything), with the wait
  the vendor asked for or a backoff in between;
* for writes, how many times the vendor applied it, counted in the sandbox's own data: never twice;
* that the connection stays `active` (only a vendor 401 takes it out of service);
* recovery: once the fault clears, the same action succeeds.

The hang cases run on a second sandbox in the background while the others run (each costs at least
the vendor client's 10 s timeout); the main sandbox is reset between cases.
"""

import concurrent.futures
import contextlib
import inspect
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from botctl.actions import ACTION_BUDGET_S, run_action
from botctl.demo import oauth_connect_via_sandbox
from botctl.sandbox.testing import running_sandbox
from cluster_kit import free_port, sh
from test_daemon import _setup_home

pytestmark = pytest.mark.slow

ADA = "ada@example.com"
OAUTH_WS = "oauthco"
P = 10  # a "persistent" fault: more uses than botctl ever makes attempts
CLIENT_TIMEOUT_S = inspect.signature(run_action).parameters["timeout"].default  # per vendor request
# Vendor error vocabulary (the sandbox's fault bodies) that must never reach a visitor.
VENDOR_WORDS = (
    "InternalError",
    "BadGateway",
    "ServiceUnavailable",
    "APIRateLimitExceeded",
    "api_error",
    "doc_url",
    "error-codes",
    "internal_server_error",
    "critical error",
    "Unavailable Shop",
    "Too Many Requests",
    "wordpress",
    "Traceback",
    "Exception",
    "<",
    "http://",
    "127.0.0.1",
    "Stripe-Should-Retry",
)


# -- the daemon and the two sandboxes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hang_sb():
    """A sandbox of its own for the hang cases, which run while the main sandbox is reset per case."""
    with running_sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def d(sandbox_server, hang_sb, tmp_path_factory):
    sandbox_server.reset()
    # Dozens of requests from one IP and one visitor in a few seconds: edge rate limits off for this daemon.
    dm = _setup_home(
        tmp_path_factory.mktemp("faults"),
        sandbox_server,
        port=free_port(),
        daemon_args=("--ip-rate", "0", "--visitor-rate", "0"),
    )
    creds, hcreds = sandbox_server.credentials(), hang_sb.credentials()
    woo = creds["woocommerce"]
    sh(
        dm.env,
        "connect",
        "woocommerce",
        "-w",
        "acme",
        "--sandbox",
        sandbox_server.url,
        "--site",
        "https://acme.example",
        "--api-key-stdin",
        input=f"{woo['consumer_key']}\n{woo['consumer_secret']}\n",
    )
    for name, flags, secret in [
        ("hubspot", ["--access-token-stdin"], hcreds["hubspot"]["access_token"]),
        ("calcom", ["--api-key-stdin"], hcreds["calcom"]["api_key"]),
        ("freshdesk", ["--domain", "acme", "--api-key-stdin"], hcreds["freshdesk"]["api_key"]),
    ]:
        sh(dm.env, "connect", name, "-w", "acme", "--sandbox", hang_sb.url, *flags, input=secret + "\n")
    sh(dm.env, "workspace", "create", OAUTH_WS, "--plan", "pro")
    rot = json.loads(sh(dm.env, "identity", "rotate", "-w", OAUTH_WS, "--json").stdout)
    dm.oauth_secret, dm.oauth_kid = rot["secret"], rot["kid"]
    dm.seed = sandbox_server.seed()
    dm.secrets = _secret_values(creds) | _secret_values(hcreds)
    yield dm
    sh(dm.env, "daemon", "stop", check=False)


def _secret_values(tree: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(tree, dict):
        for k, v in tree.items():
            if (
                isinstance(v, str)
                and len(v) >= 8
                and any(w in k for w in ("token", "key", "secret", "password"))
            ):
                out.add(v)
            else:
                out |= _secret_values(v)
    elif isinstance(tree, list):
        for v in tree:
            out |= _secret_values(v)
    return out


def _oauth_token(d) -> str:
    now = int(time.time())
    claims = {
        "sub": "u-ada",
        "email": ADA,
        "name": "Ada Lovelace",
        "aud": OAUTH_WS,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, d.oauth_secret, algorithm="HS256", headers={"kid": d.oauth_kid})


# -- reading what happened: audit.db, vault.db, the sandbox ----------------------------------------------------


def _db(path):
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10))


def audit_since(d, seq: int = 0) -> list[dict[str, Any]]:
    """Audit records after `seq` (read straight from audit.db: the daemon answers only once they are durable)."""
    with _db(d.home / "audit.db") as db:
        rows = db.execute("SELECT seq, body FROM records WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
    return [{"seq": s, **json.loads(b)} for s, b in rows]


def audit_head(d) -> int:
    with _db(d.home / "audit.db") as db:
        return db.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]


def one_action_record(d, rid: str, since: int) -> dict[str, Any]:
    """The request's one `action.run` record; a write also has its `action.started` intent, before it."""
    # A refresh the request set off carries its request id too (connection.* records): not the action's own.
    recs = [r for r in audit_since(d, since) if r["request_id"] == rid and r["event"].startswith("action.")]
    runs = [r for r in recs if r["event"] == "action.run"]
    assert len(runs) == 1, recs
    started = [r for r in recs if r["event"] == "action.started"]
    from botctl.connectors import registry

    if registry.find_action(runs[0]["action"])[1].is_write:
        assert "pending_id" in runs[0]["detail"], runs
        assert len(started) == 1 and started[0]["seq"] < runs[0]["seq"], recs
        assert (
            started[0]["outcome"] == "pending"
            and started[0]["detail"]["pending_id"] == runs[0]["detail"]["pending_id"]
        )
    assert len(recs) == len(runs) + len(started), recs
    return runs[0]


def connection(d, connector: str, ws: str = "acme") -> dict[str, Any]:
    with _db(d.home / "vault.db") as db:
        row = db.execute(
            "SELECT c.status, c.status_reason, c.refresh_state FROM connections c JOIN workspaces w "
            "ON w.id = c.workspace_id WHERE w.name = ? AND c.connector = ?",
            (ws, connector),
        ).fetchone()
    assert row is not None, (ws, connector)
    return {"status": row[0], "reason": row[1], "refresh_state": row[2]}


def settled_log(sb) -> list[dict[str, Any]]:
    """The sandbox's request log once it stops moving (a dropped connection is logged after the drop)."""
    last = sb.stats()
    for _ in range(40):
        time.sleep(0.05)
        now = sb.stats()
        if now["total"] == last["total"]:
            break
        last = now
    return last["requests"]


def attempts_of_faulted(log: list[dict[str, Any]], vendor: str, kind: str) -> list[dict[str, Any]]:
    """Every request for the same method and path as the first one the fault hit (the first, then retries)."""
    mine = [e for e in log if e["vendor"] == vendor]
    hit = [e for e in mine if e["fault"]]
    assert hit and hit[0]["fault"] == kind, mine
    first = hit[0]
    tries = [e for e in mine if (e["method"], e["path"]) == (first["method"], first["path"])]
    assert tries[0] is first, "the request the fault hit was the first of its kind"
    return tries


def assert_clean(d, response: httpx.Response, log: list[dict[str, Any]]) -> None:
    """The visitor's error: the stable envelope only, nothing of the vendor or of botctl's internals."""
    body = response.json()
    rid = response.headers["x-request-id"]
    assert set(body) == {"error", "request_id"} and body["request_id"] == rid
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    text = response.text
    for word in VENDOR_WORDS:
        assert word not in text, (word, text)
    for value in d.secrets | {e["request_id"] for e in log}:
        assert value not in text
    assert response.headers["content-type"].startswith("application/json")


# -- the matrix ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    action: str
    kind: str
    count: int
    status: int  # what the visitor gets
    code: str | None  # the stable code (None: the fault was absorbed, 200)
    attempts: int  # how many times the sandbox saw the faulted request (1: not retried)
    applied: int | None = None  # writes: how many times the vendor applied it; None: a read
    retry_after: float | None = None  # the vendor's Retry-After
    header: str | None = None  # the Retry-After the visitor gets
    method: str | None = None  # narrows the fault to the write itself
    path: str | None = None
    min_gap: float = 0.2  # the least time between two attempts (backoff, or the vendor's Retry-After)

    @property
    def vendor(self) -> str:
        return self.action.split(".")[0]


ZD_CREATE = dict(action="zendesk.create_ticket", method="POST", path="/tickets.json")  # Idempotency-Key
STRIPE_CANCEL = dict(
    action="stripe.cancel_my_subscription", method="POST"
)  # Idempotency-Key, Stripe-Should-Retry
WOO_NOTE = dict(action="woocommerce.add_order_note", method="POST", path="/notes")  # no key: never replayed

CASES = {
    # Reads (every request of an idempotent action may be retried): transient faults are absorbed, persistent
    # ones surface after three attempts.
    "read-429-no-retry-after": Case("shopify.list_my_orders", "429", P, 429, "rate_limited", 3),
    "read-429-no-retry-after-once": Case("stripe.list_my_invoices", "429", 1, 200, None, 2),
    "read-429-retry-after-1s-once": Case(
        "shopify.list_my_orders", "429", 1, 200, None, 2, retry_after=1, min_gap=1.0
    ),
    "read-429-retry-after-120s": Case(
        "stripe.list_my_invoices", "429", 1, 429, "rate_limited", 1, retry_after=120, header="120"
    ),
    "read-500": Case("stripe.list_my_invoices", "500", P, 502, "upstream_error", 3),
    "read-500-once": Case("zendesk.list_my_tickets", "500", 1, 200, None, 2),
    "read-502": Case("woocommerce.list_my_orders", "502", P, 502, "upstream_error", 3),
    "read-502-once": Case("woocommerce.list_my_orders", "502", 1, 200, None, 2),
    "read-503": Case("zendesk.list_my_tickets", "503", P, 502, "upstream_error", 3),
    "read-503-once": Case("shopify.list_my_orders", "503", 1, 200, None, 2),
    "read-reset": Case("shopify.list_my_orders", "reset", P, 502, "upstream_error", 3),
    "read-reset-once": Case("zendesk.list_my_tickets", "reset", 1, 200, None, 2),
    "read-malformed": Case("woocommerce.list_my_orders", "malformed_json", P, 502, "upstream_error", 3),
    "read-malformed-once": Case("stripe.list_my_invoices", "malformed_json", 1, 200, None, 2),
    # A write with an Idempotency-Key (Zendesk ticket create): retried with the same key, applied at most once.
    "zendesk-write-429-retry-after-1s-once": Case(
        **ZD_CREATE,
        kind="429",
        count=1,
        status=200,
        code=None,
        attempts=2,
        applied=1,
        retry_after=1,
        min_gap=1.0,
    ),
    "zendesk-write-429-retry-after-120s": Case(
        **ZD_CREATE,
        kind="429",
        count=P,
        status=429,
        code="rate_limited",
        attempts=1,
        applied=0,
        retry_after=120,
        header="120",
    ),
    "zendesk-write-500": Case(
        **ZD_CREATE, kind="500", count=P, status=502, code="outcome_unknown", attempts=3, applied=0
    ),
    "zendesk-write-502-once": Case(
        **ZD_CREATE, kind="502", count=1, status=200, code=None, attempts=2, applied=1
    ),
    "zendesk-write-503": Case(
        **ZD_CREATE, kind="503", count=P, status=502, code="outcome_unknown", attempts=3, applied=0
    ),
    "zendesk-write-reset": Case(
        **ZD_CREATE, kind="reset", count=P, status=502, code="outcome_unknown", attempts=3, applied=0
    ),
    "zendesk-write-reset-once": Case(
        **ZD_CREATE, kind="reset", count=1, status=200, code=None, attempts=2, applied=1
    ),
    "zendesk-write-malformed-once": Case(
        **ZD_CREATE, kind="malformed_json", count=1, status=200, code=None, attempts=2, applied=1
    ),
    # The write happened but its answer was lost: the retry carries the same key, Zendesk replays its answer.
    "zendesk-write-applied-then-reset-once": Case(
        **ZD_CREATE, kind="write_then_reset", count=1, status=200, code=None, attempts=2, applied=1
    ),
    "zendesk-write-applied-then-reset": Case(
        **ZD_CREATE,
        kind="write_then_reset",
        count=P,
        status=502,
        code="outcome_unknown",
        attempts=3,
        applied=1,
    ),
    "zendesk-write-applied-then-500-once": Case(
        **ZD_CREATE, kind="rotate_then_fail", count=1, status=200, code=None, attempts=2, applied=1
    ),
    # Stripe: Idempotency-Key on every write, and its 5xx say Stripe-Should-Retry: true.
    "stripe-write-429-once": Case(
        **STRIPE_CANCEL, kind="429", count=1, status=200, code=None, attempts=2, applied=1
    ),
    "stripe-write-500": Case(
        **STRIPE_CANCEL, kind="500", count=P, status=502, code="upstream_error", attempts=3, applied=0
    ),
    "stripe-write-503-once": Case(
        **STRIPE_CANCEL, kind="503", count=1, status=200, code=None, attempts=2, applied=1
    ),
    "stripe-write-applied-then-500-once": Case(
        **STRIPE_CANCEL, kind="rotate_then_fail", count=1, status=200, code=None, attempts=2, applied=1
    ),
    "stripe-write-applied-then-reset-once": Case(
        **STRIPE_CANCEL, kind="write_then_reset", count=1, status=200, code=None, attempts=2, applied=1
    ),
    # A write without an idempotency key (WooCommerce order note): only a 429 (refused before any work) is
    # retried; anything else surfaces at once, even a one-off, so a lost answer is never turned into two notes.
    "woo-write-429-once": Case(**WOO_NOTE, kind="429", count=1, status=200, code=None, attempts=2, applied=1),
    "woo-write-429": Case(
        **WOO_NOTE, kind="429", count=P, status=429, code="rate_limited", attempts=3, applied=0
    ),
    "woo-write-500-once": Case(
        **WOO_NOTE, kind="500", count=1, status=502, code="outcome_unknown", attempts=1, applied=0
    ),
    "woo-write-502-once": Case(
        **WOO_NOTE, kind="502", count=1, status=502, code="outcome_unknown", attempts=1, applied=0
    ),
    "woo-write-503-once": Case(
        **WOO_NOTE, kind="503", count=1, status=502, code="outcome_unknown", attempts=1, applied=0
    ),
    "woo-write-reset-once": Case(
        **WOO_NOTE, kind="reset", count=1, status=502, code="outcome_unknown", attempts=1, applied=0
    ),
    "woo-write-malformed-once": Case(
        **WOO_NOTE, kind="malformed_json", count=1, status=502, code="outcome_unknown", attempts=1, applied=0
    ),
    "woo-write-applied-then-reset-once": Case(
        **WOO_NOTE,
        kind="write_then_reset",
        count=1,
        status=502,
        code="outcome_unknown",
        attempts=1,
        applied=1,
    ),
    "woo-write-applied-then-500-once": Case(
        **WOO_NOTE,
        kind="rotate_then_fail",
        count=1,
        status=502,
        code="outcome_unknown",
        attempts=1,
        applied=1,
    ),
}


def params_for(d, action: str, tag: str) -> dict[str, Any]:
    ada = {v: d.seed[v][ADA] for v in ("stripe", "woocommerce")}
    return {
        "zendesk.create_ticket": {"subject": f"Fault case {tag}", "description": "Is this created once?"},
        "freshdesk.create_ticket": {"subject": f"Fault case {tag}", "description": "Is this created once?"},
        "stripe.cancel_my_subscription": {"subscription_id": ada["stripe"]["subscriptions"][0]},
        "woocommerce.add_order_note": {
            "order_id": ada["woocommerce"]["orders"][0],
            "note": f"Fault case {tag}",
        },
    }.get(action, {})


def applied(sb, action: str, params: dict[str, Any]) -> int:
    """How many times the vendor applied the write, from the sandbox's own data."""
    stores = sb.state.stores
    if action in ("zendesk.create_ticket", "freshdesk.create_ticket"):
        tickets = stores[action.split(".")[0]].tickets.values()
        return sum(1 for t in tickets if t.get("subject") == params["subject"])
    if action == "woocommerce.add_order_note":
        notes = stores["woocommerce"].notes.get(params["order_id"], [])
        return sum(1 for n in notes if params["note"] in n["note"])
    if action == "stripe.cancel_my_subscription":
        # Stripe executes a keyed write once and saves its answer under the key: one saved key per execution.
        return len(stores["stripe"].idempotency)
    raise AssertionError(action)


@pytest.mark.parametrize("name", list(CASES))
def test_fault(d, name):
    case, sb = CASES[name], d.sandbox
    sb.reset()
    params = params_for(d, case.action, name)
    sb.fault(
        case.vendor, case.kind, case.count, retry_after=case.retry_after, path=case.path, method=case.method
    )
    mark = audit_head(d)

    r = d.act(case.action, params, token=d.token())
    log = settled_log(sb)

    # The visitor: the stable code, its status, the vendor's wait when it is worth telling.
    assert r.status_code == case.status, r.text
    rid = r.headers["x-request-id"]
    if case.code is None:
        assert r.json()["ok"] is True and r.json()["request_id"] == rid
    else:
        assert r.json()["error"]["code"] == case.code, r.text
        assert_clean(d, r, log)
    assert r.headers.get("retry-after") == case.header

    # The sandbox: how often it saw the faulted request, and how long botctl waited between attempts.
    tries = attempts_of_faulted(log, case.vendor, case.kind)
    assert len(tries) == case.attempts, tries
    assert sum(1 for t in tries if t["fault"]) == min(case.count, case.attempts)
    gaps = [b["at"] - a["at"] for a, b in zip(tries, tries[1:], strict=False)]
    assert all(g >= case.min_gap for g in gaps), gaps
    if case.applied is not None:
        assert applied(sb, case.action, params) == case.applied

    # The audit trail: one record, its outcome and reason, the vendor's answers as the sandbox gave them.
    rec = one_action_record(d, rid, mark)
    outcome = "ok" if case.code is None else "unknown" if case.code == "outcome_unknown" else "error"
    assert (rec["outcome"], rec["reason"]) == (outcome, case.code)
    seen = [e["status"] for e in log if e["vendor"] == case.vendor and e["status"] is not None]
    assert rec["detail"]["upstream_statuses"] == seen
    if case.header is not None:
        assert rec["detail"]["retry_after"] == case.retry_after
    assert not any(s in json.dumps(rec) for s in d.secrets)
    # A vendor fault is not a credential problem: the connection stays in service.
    assert connection(d, case.vendor)["status"] == "active"

    # Recovery: the fault clears, the same action succeeds.
    sb.clear_faults()
    mark = audit_head(d)
    again = d.act(case.action, params, token=d.token())
    assert again.status_code == 200, again.text
    assert one_action_record(d, again.headers["x-request-id"], mark)["outcome"] == "ok"
    if case.action == "stripe.cancel_my_subscription":
        sub = sb.state.stores["stripe"].subscriptions[params["subscription_id"]]
        assert sub["cancel_at_period_end"] is True and applied(sb, case.action, params) == 1  # once, ever
    elif case.applied is not None:
        assert applied(sb, case.action, params) == case.applied + 1


# -- hangs: past the client timeout, and past the whole action's budget --------------------------------------

HANGS = {
    # action, fault (count, method), visitor status, code, attempts, seconds (at least, at most)
    "read-hang": (
        "hubspot.get_my_contact",
        P,
        None,
        504,
        "upstream_timeout",
        3,
        (ACTION_BUDGET_S - 1, ACTION_BUDGET_S + 3),
    ),
    "read-hang-once": (
        "calcom.list_my_bookings",
        1,
        None,
        200,
        None,
        2,
        (CLIENT_TIMEOUT_S, CLIENT_TIMEOUT_S + 4),
    ),
    # A write sent and never answered: it may have been applied, so never "try again".
    "write-hang": (
        "freshdesk.create_ticket",
        P,
        "POST",
        502,
        "outcome_unknown",
        1,
        (CLIENT_TIMEOUT_S, CLIENT_TIMEOUT_S + 4),
    ),
}


@pytest.fixture(scope="module", autouse=True)
def hangs(d, hang_sb):
    """Start the hang cases at the beginning of the module; `test_hangs` collects them at the end."""
    tok = d.token()
    started = {}

    def run(name: str) -> tuple[httpx.Response, float]:
        action = HANGS[name][0]
        with httpx.Client(base_url=d.url, timeout=60) as http:
            t0 = time.monotonic()
            r = http.post(
                f"/v1/workspaces/acme/actions/{action}",
                json={"params": params_for(d, action, name)},
                headers={"Authorization": f"Bearer {tok}"},
            )
            return r, time.monotonic() - t0

    for action, count, method, *_rest in HANGS.values():
        # hang_seconds: just past the client's timeout (the sandbox also lets go when the client does).
        hang_sb.fault(action.split(".")[0], "hang", count, method=method, hang_seconds=CLIENT_TIMEOUT_S + 2)
    started["mark"] = audit_head(d)
    with concurrent.futures.ThreadPoolExecutor(len(HANGS)) as pool:
        started["futures"] = {name: pool.submit(run, name) for name in HANGS}
        yield started
        concurrent.futures.wait(started["futures"].values())


def test_hangs_time_out_with_a_stable_code(d, hang_sb, hangs):
    results = {name: f.result() for name, f in hangs["futures"].items()}
    log = settled_log(hang_sb)
    for name, (r, took) in results.items():
        action, count, _, status, code, attempts, (low, high) = HANGS[name]
        vendor = action.split(".")[0]
        # Within the edge's wait for the provider (30 s): the visitor gets the provider's answer, not a 503.
        assert r.status_code == status, (name, took, r.text)
        assert low <= took <= high, (name, took)
        rid = r.headers["x-request-id"]
        if code is None:
            assert r.json()["ok"] is True
        else:
            assert r.json()["error"]["code"] == code
            assert_clean(d, r, log)
        tries = attempts_of_faulted(log, vendor, "hang")
        assert len(tries) == attempts and all(t["status"] is None for t in tries if t["fault"]), (name, tries)
        rec = one_action_record(d, rid, hangs["mark"])
        outcome = "ok" if code is None else "unknown" if code == "outcome_unknown" else "error"
        assert (rec["outcome"], rec["reason"]) == (outcome, code), rec
        assert connection(d, vendor)["status"] == "active"
    params = params_for(d, "freshdesk.create_ticket", "write-hang")
    assert applied(hang_sb, "freshdesk.create_ticket", params) == 0  # a hung write was never applied
    # Recovery.
    hang_sb.clear_faults()
    for name, (action, *_rest) in HANGS.items():
        r = d.act(action, params_for(d, action, name), token=d.token())
        assert r.status_code == 200, (name, r.text)
    assert applied(hang_sb, "freshdesk.create_ticket", params) == 1


# -- the connection's status: faults leave it alone, a vendor 401 does not --------------------------------------


def test_only_a_401_takes_the_connection_out_of_service(d):
    sb = d.sandbox
    sb.reset()
    tok = d.token()
    for kind, wait in (("500", None), ("503", None), ("reset", None), ("429", 120)):
        sb.fault("zendesk", kind, P, retry_after=wait)
        assert d.act("zendesk.list_my_tickets", token=tok).status_code in (429, 502)
        sb.clear_faults()
        assert connection(d, "zendesk")["status"] == "active"
    assert d.act("zendesk.list_my_tickets", token=tok).status_code == 200
    # The vendor stops accepting the stored token: needs_reauth, audited, and the connection is parked.
    sb.revoke_token(sb.credentials()["zendesk"]["access_token"])
    mark = audit_head(d)
    r = d.act("zendesk.list_my_tickets", token=tok)
    assert r.status_code == 409 and r.json()["error"]["code"] == "needs_reauth", r.text
    assert_clean(d, r, settled_log(sb))
    rec = one_action_record(d, r.headers["x-request-id"], mark)
    assert (rec["outcome"], rec["reason"], rec["detail"]["upstream_status"]) == ("error", "needs_reauth", 401)
    assert connection(d, "zendesk")["status"] == "needs_reauth"
    # Parked: the next visitor gets the same clear code at once and the vendor is not called.
    sb.reset()
    r = d.act("zendesk.list_my_tickets", token=tok)
    assert r.status_code == 409 and r.json()["error"]["code"] == "needs_reauth"
    assert sb.stats()["vendors"].get("zendesk", {}).get("requests", 0) == 0
    # The operator reconnects: back in service.
    sh(
        d.env,
        "connect",
        "zendesk",
        "-w",
        "acme",
        "--sandbox",
        sb.url,
        "--subdomain",
        "acme",
        "--access-token-stdin",
        input=sb.credentials()["zendesk"]["access_token"] + "\n",
    )
    assert connection(d, "zendesk")["status"] == "active"
    assert d.act("zendesk.list_my_tickets", token=tok).status_code == 200


# -- a token endpoint that rotates the refresh token, then fails before answering ---------------------------


@pytest.mark.parametrize(
    "connector, action, extra, token_path",
    [
        # Zendesk invalidates a refresh token once it has rotated it: the grant cannot be recovered.
        ("zendesk", "zendesk.list_my_tickets", ("--subdomain", "acme"), "/oauth/tokens"),
        # Shopify keeps the previous refresh token valid until its replacement is used: the retry recovers it.
        ("shopify", "shopify.list_my_orders", ("--shop", "acme"), "/admin/oauth/access_token"),
    ],
)
def test_token_endpoint_rotates_then_fails(d, connector, action, extra, token_path):
    sb = d.sandbox
    sb.reset()
    sb.configure(auto_approve=True)
    oauth_connect_via_sandbox(d.env, sb.url, connector, OAUTH_WS, *extra)
    tok = _oauth_token(d)

    def act() -> httpx.Response:
        return d.act(action, token=tok, ws=OAUTH_WS)

    def grants() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        st = sb.stats()
        return (
            st["token_grants"].get(connector, {}),
            st["token_grant_errors"].get(connector, {}),
            st["oauth_events"].get(connector, {}),
        )

    assert act().status_code == 200
    assert grants()[0] == {"authorization_code": 1}
    assert connection(d, connector, OAUTH_WS)["status"] == "active"

    # The access token expires at the vendor; the refresh it causes rotates the refresh token at the server,
    # whose answer is then lost (a 500).
    sb.expire_oauth_tokens(connector)
    sb.fault(connector, "rotate_then_fail", 1, path=token_path, method="POST")
    mark = audit_head(d)
    r = act()
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error", r.text
    assert_clean(d, r, settled_log(sb))
    recs = audit_since(d, mark)
    rec = one_action_record(d, r.headers["x-request-id"], mark)
    assert (rec["outcome"], rec["reason"]) == ("error", "upstream_error")
    assert rec["detail"]["upstream_statuses"] == [401]
    failed = [x for x in recs if x["event"] == "connection.refresh_failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "refresh_outcome_unknown", recs
    assert failed[0]["detail"]["outcome_unknown"] is True and failed[0]["workspace"] == OAUTH_WS
    assert grants()[0] == {"authorization_code": 1, "refresh_token": 1}  # the server did rotate it
    # Not a silent wrong state: still in service, with the refresh's outcome recorded as unknown.
    assert connection(d, connector, OAUTH_WS) == {
        "status": "active",
        "reason": None,
        "refresh_state": "unknown",
    }
    assert not any(s in json.dumps(recs) for s in d.secrets)

    # The token endpoint is back. The next action sends the stored refresh token once more.
    mark = audit_head(d)
    r = act()
    recs = audit_since(d, mark)
    mine = [x for x in recs if x["request_id"] == r.headers["x-request-id"] and x["event"] == "action.run"]
    if connector == "zendesk":
        # That token was rotated away: invalid_grant, and Zendesk revokes the grant (reuse). botctl stops
        # there: needs_reauth with a reason that says why, never another refresh loop.
        assert r.status_code == 409 and r.json()["error"]["code"] == "needs_reauth", r.text
        assert_clean(d, r, settled_log(sb))
        assert [(x["event"], x["outcome"], x["reason"]) for x in mine] == [
            ("action.run", "error", "needs_reauth")
        ]
        failed = [x for x in recs if x["event"] == "connection.refresh_failed"]
        assert len(failed) == 1 and failed[0]["reason"] == "needs_reauth"
        assert failed[0]["detail"]["previous_outcome"] == "unknown"
        assert grants() == (
            {"authorization_code": 1, "refresh_token": 1},
            {"invalid_grant": 1},
            {"refresh_token_reuse": 1},
        )
        state = connection(d, connector, OAUTH_WS)
        assert state["status"] == "needs_reauth" and "outcome was unknown" in state["reason"]
        # Never stuck: the next visitor gets the same clear answer at once, without a call to the vendor.
        before = sb.stats()["vendors"][connector]["requests"]
        r = act()
        assert r.status_code == 409 and r.json()["error"]["code"] == "needs_reauth"
        assert sb.stats()["vendors"][connector]["requests"] == before
        # The operator reconnects; the visitor is served again.
        oauth_connect_via_sandbox(d.env, sb.url, connector, OAUTH_WS, *extra)
        assert act().status_code == 200
        assert connection(d, connector, OAUTH_WS)["status"] == "active"
    else:
        # Recovered: the previous refresh token still works once, the action is retried after the refresh.
        assert r.status_code == 200, r.text
        assert [(x["outcome"], x["reason"]) for x in mine] == [("retried", "token_refreshed"), ("ok", None)]
        assert mine[0]["detail"]["retried"] is True and mine[1]["detail"]["attempt"] == 2
        refreshed = [x for x in recs if x["event"] == "connection.refreshed"]
        assert len(refreshed) == 1 and refreshed[0]["detail"]["previous_outcome"] == "unknown"
        assert grants() == ({"authorization_code": 1, "refresh_token": 2}, {}, {})
        assert connection(d, connector, OAUTH_WS) == {
            "status": "active",
            "reason": None,
            "refresh_state": None,
        }
        assert act().status_code == 200 and grants()[0]["refresh_token"] == 2  # no further refresh


def test_audit_chain_verifies(d):
    assert sh(d.env, "audit", "verify").returncode == 0
