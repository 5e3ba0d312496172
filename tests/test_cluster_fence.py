"""Fencing of intent recovery (issue #15): a node that stalls past the lapse while one of its writes is at the
vendor, then resumes, does not give that request a second outcome.

Two full nodes on one PostgreSQL database, heartbeat and lapse shortened (BOTCTL_NODE_*). A visitor's write
through node 1 reaches the vendor, which applies it and holds its answer for a moment (sandbox fault
`write_then_delay`). Node 1 is frozen then (SIGSTOP of its supervisor, provider and edge: a frozen VM, a
long pause); node 2 sees node 1's heartbeat lapse and records the write `unknown` / `interrupted`. Node 1 is
thawed (SIGCONT): its provider reads the vendor's answer, which says the write was done.

Then the request has exactly one outcome record (`action.run`: node 2's `unknown`), and the truth is not
lost: node 1's `action.outcome_late` (outcome `ok`) names the record it resolves. The visitor is answered
with the real result (the ticket exists: telling them otherwise would invite a second one).

Node 1 runs under the machine's host name: a stopped process is still there (its pid answers), so node 2
cannot take it for gone and must wait for the lapse, as with two machines.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from botctl import crypto
from botctl.demo import oauth_connect_via_sandbox
from cluster_kit import WS, daemon_start_args, join_nodes, ready, sh, sql, until
from test_daemon import free_port

pytestmark = pytest.mark.slow

WRITE = "zendesk.create_ticket"
HEARTBEAT_S, LAPSE_S = 0.5, 3.0
VENDOR_DELAY_S = 2.0  # the vendor's answer is held this long (node 1 is frozen by then)


@pytest.fixture
def two_nodes(sandbox_server, tmp_path, pg_url):
    sb = sandbox_server
    sb.reset()
    sb.configure(auto_approve=True)
    key = base64.b64encode(crypto.new_key()).decode()
    nodes: list[dict] = []
    try:
        timing = {"BOTCTL_NODE_HEARTBEAT_S": str(HEARTBEAT_S), "BOTCTL_NODE_LAPSE_S": str(LAPSE_S)}
        for name, _, env in join_nodes(tmp_path, pg_url, key, **timing):
            nodes.append({"name": name, "env": env, "port": free_port()})
        n1 = nodes[0]
        sh(n1["env"], "workspace", "create", WS, "--plan", "pro")
        rot = json.loads(sh(n1["env"], "identity", "rotate", "-w", WS, "--json").stdout)
        oauth_connect_via_sandbox(n1["env"], sb.url, "zendesk", WS, "--subdomain", "acme")
        for n in nodes:
            sh(n["env"], *daemon_start_args(n["port"]))
            until(lambda n=n: ready(f"http://127.0.0.1:{n['port']}"), 30, f"{n['name']} to be ready")
        yield {"url": pg_url, "nodes": nodes, "secret": rot["secret"], "kid": rot["kid"], "sandbox": sb}
    finally:
        sb.clear_faults()
        for n in nodes:
            sh(n["env"], "daemon", "stop", check=False)


def _token(secret: str, kid: str) -> str:
    now = int(time.time())
    claims = {"sub": "u-ada", "email": "ada@example.com", "aud": WS, "iat": now, "exp": now + 600}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def _records(url: str, rid: str) -> list[dict]:
    rows = sql(url, "SELECT seq, body FROM records ORDER BY seq")
    return [rec for rec in ({"seq": s, **json.loads(b)} for s, b in rows) if rec.get("request_id") == rid]


def test_a_node_stalled_past_the_lapse_gives_its_write_one_outcome_and_the_truth_late(two_nodes):
    url, (n1, n2), sb = two_nodes["url"], two_nodes["nodes"], two_nodes["sandbox"]
    rid = "req_fence" + uuid.uuid4().hex[:16]
    subject = f"fence {rid}"
    answer: dict = {}

    def visitor() -> None:
        try:
            r = httpx.post(
                f"http://127.0.0.1:{n1['port']}/v1/workspaces/{WS}/actions/{WRITE}",
                json={
                    "params": {"subject": subject, "description": "a write at the vendor as node 1 stalls"}
                },
                headers={
                    "Authorization": f"Bearer {_token(two_nodes['secret'], two_nodes['kid'])}",
                    "X-Request-Id": rid,
                },
                timeout=60,
            )
            answer.update(status=r.status_code, body=r.json())
        except httpx.HTTPError as exc:
            answer.update(status=None, error=type(exc).__name__)

    st = json.loads(sh(n1["env"], "daemon", "status", "--json").stdout)
    pids = [st["supervisor"]["pid"], st["provider"]["pid"], st["edge"]["pid"]]
    assert all(pids), st
    sb.fault("zendesk", "write_then_delay", path="/tickets.json", method="POST", hang_seconds=VENDOR_DELAY_S)
    thread = threading.Thread(target=visitor, daemon=True)
    thread.start()
    try:
        # At the vendor: the fault taken (the write applied, its answer held) after `action.started`.
        until(
            lambda: (
                not sb.state.faults.list()
                and sql(
                    url,
                    "SELECT node FROM pending_actions WHERE request_id = %s AND started_seq IS NOT NULL",
                    rid,
                )
                == [("node-1",)]
            ),
            20,
            "the write to be held at the vendor on node 1",
            lambda: (answer, sql(url, "SELECT request_id, node, owner, started_seq FROM pending_actions")),
        )
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        assert not answer, answer
        # Node 2, once node 1's heartbeat has lapsed: the write on record as unknown / interrupted.
        unknown = until(
            lambda: [r for r in _records(url, rid) if r["event"] == "action.run"],
            LAPSE_S + 20,
            "node 2 to record node 1's write as interrupted",
        )
        recorded_after = time.monotonic() - frozen_at
        assert [(r["node"], r["outcome"], r["reason"]) for r in unknown] == [
            ("node-2", "unknown", "interrupted")
        ]
        assert sql(url, "SELECT count(*) FROM pending_actions WHERE request_id = %s", rid) == [(0,)]
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGCONT)
    thread.join(timeout=40)
    assert answer, "the visitor was left hanging"

    # Node 1's records are durable before its visitor's answer: all there now.
    recs = _records(url, rid)
    runs = [r for r in recs if r["event"] == "action.run"]
    late = [r for r in recs if r["event"] == "action.outcome_late"]
    print(
        f"\nnode 1 frozen {recorded_after:.1f}s before node 2 recorded its write; visitor got {answer}; "
        f"records: {[(r['seq'], r['event'], r['node'], r['outcome'], r['reason']) for r in recs]}"
    )
    # One outcome record per request: node 2's unknown, not a second `action.run` by node 1.
    assert [(r["node"], r["outcome"]) for r in runs] == [("node-2", "unknown")], runs
    # The truth, not dropped: node 1's late outcome, naming the record it resolves.
    assert len(late) == 1, recs
    (lt,) = late
    assert (lt["node"], lt["outcome"], lt["reason"], lt["action"]) == ("node-1", "ok", None, WRITE), lt
    assert lt["detail"]["resolves"] == {"seq": runs[0]["seq"], "node": "node-2", "outcome": "unknown"}, lt
    assert lt["detail"]["pending_id"] == runs[0]["detail"]["pending_id"], (lt, runs)
    assert lt["seq"] > runs[0]["seq"]
    assert lt["actor"]["email"] == "ada@example.com"
    # The visitor: the real result (the ticket was created), once the late record is durable.
    assert answer["status"] == 200 and answer["body"]["ok"] is True, answer
    assert answer["body"]["request_id"] == rid
    # The vendor: applied once.
    subjects = [t["subject"] for t in list(sb.state.stores["zendesk"].tickets.values())]
    assert subjects.count(subject) == 1
    assert sql(url, "SELECT count(*) FROM pending_actions")[0][0] == 0

    # An operator listing unknowns sees this one resolved late.
    out = sh(n2["env"], "audit", "--outcome", "unknown", "--request-id", rid).stdout
    assert "late: ok" in out and f"#{lt['seq']}" in out, out
    # With the filter, the unknown and the late record that resolves it (docs/audit-format.md).
    shown, resolving = [
        json.loads(x) for x in sh(n2["env"], "audit", "--outcome", "unknown", "--json").stdout.splitlines()
    ]
    assert shown["seq"] == runs[0]["seq"]
    assert shown["resolved_late"] == {"seq": lt["seq"], "outcome": "ok", "node": "node-1"}, shown
    assert resolving["seq"] == lt["seq"] and resolving["event"] == "action.outcome_late", resolving
    assert resolving["resolves"]["seq"] == runs[0]["seq"], resolving
    for n in (n1, n2):
        assert sh(n["env"], "audit", "verify").returncode == 0
    # Node 1 carries on (the same provider, beating again): nothing was restarted.
    assert Path(f"/proc/{pids[1]}").exists(), "node 1's provider was restarted"
    until(
        lambda: (
            {
                n["name"]: n["alive"]
                for n in json.loads(sh(n2["env"], "daemon", "status", "--cluster", "--json").stdout)["nodes"]
            }
            == {"node-1": True, "node-2": True}
        ),
        10,
        "node 1's heartbeat to be back",
    )
