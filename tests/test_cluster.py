"""Two full nodes (supervisor, provider, edge each; different ports and homes; one PostgreSQL database) behind
real HTTP on loopback (issue #15): one refresh per expiry across the cluster, a dead node's pending writes
recorded by a live one, and the caches' bound on a removed key or a downgraded plan."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from botctl import crypto
from botctl.demo import oauth_connect_via_sandbox
from cluster_kit import WS, daemon_start_args, join_nodes, sh, sql
from test_daemon import free_port

pytestmark = pytest.mark.slow

ADA = "ada@example.com"


@dataclass
class Node:
    name: str
    home: Path
    env: dict
    port: int
    http: httpx.Client


@dataclass
class Cluster:
    url: str
    nodes: list[Node]
    secret: str
    kid: str
    sandbox: object

    def token(self, email: str = ADA, sub: str = "u-ada") -> str:
        now = int(time.time())
        claims = {"sub": sub, "email": email, "name": "Ada", "aud": WS, "iat": now, "exp": now + 600}
        return jwt.encode(claims, self.secret, algorithm="HS256", headers={"kid": self.kid})

    def records(self, after: int = 0) -> list[dict]:
        return [
            {"seq": s, **json.loads(b)}
            for s, b in sql(self.url, "SELECT seq, body FROM records WHERE seq > %s ORDER BY seq", after)
        ]

    def head(self) -> int:
        return sql(self.url, "SELECT coalesce(max(seq), 0) FROM records")[0][0]


def act(node: Node, action: str, token: str, params: dict | None = None) -> httpx.Response:
    return node.http.post(
        f"/v1/workspaces/{WS}/actions/{action}",
        json={"params": params or {}},
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture(scope="module")
def cluster(sandbox_server, tmp_path_factory, pg_database):
    sb = sandbox_server
    sb.reset()
    sb.configure(auto_approve=True)
    key = base64.b64encode(crypto.new_key()).decode()
    tmp = tmp_path_factory.mktemp("cluster")
    with pg_database() as url:
        nodes: list[Node] = []
        try:
            for name, home, env in join_nodes(tmp, url, key):
                nodes.append(Node(name, home, env, free_port(), None))  # type: ignore[arg-type]
            n1 = nodes[0]
            sh(n1.env, "workspace", "create", WS, "--plan", "pro")
            rot = json.loads(sh(n1.env, "identity", "rotate", "-w", WS, "--json").stdout)
            oauth_connect_via_sandbox(n1.env, sb.url, "zendesk", WS, "--subdomain", "acme")
            for n in nodes:
                sh(n.env, *daemon_start_args(n.port))
                n.http = httpx.Client(base_url=f"http://127.0.0.1:{n.port}", timeout=60)
            yield Cluster(url, nodes, rot["secret"], rot["kid"], sb)
        finally:
            for n in nodes:
                sh(n.env, "daemon", "stop", check=False)
                if n.http is not None:
                    n.http.close()


def test_both_nodes_serve_the_workspace_and_name_themselves(cluster):
    tok = cluster.token()
    mark = cluster.head()
    for n in cluster.nodes:
        r = act(n, "zendesk.list_my_tickets", tok)
        assert r.status_code == 200, r.text
    runs = [r for r in cluster.records(mark) if r["event"] == "action.run"]
    assert sorted(r["node"] for r in runs) == ["node-1", "node-2"]


def test_a_refresh_storm_over_both_nodes_makes_one_token_request(cluster):
    """200 callers, half on each node, on an expired OAuth token: exactly one refresh grant at the sandbox's
    authorization server (the lease on the connection row holds across the two provider processes)."""
    sb = cluster.sandbox

    def refresh_grants() -> int:
        return sb.stats()["token_grants"].get("zendesk", {}).get("refresh_token", 0)

    before = refresh_grants()
    mark = cluster.head()
    # Expired at the vendor (each caller's first call gets a 401) and in botctl's row (due for a refresh).
    sb.expire_oauth_tokens("zendesk")
    sql(cluster.url, "UPDATE connections SET expires_at = '2020-01-01T00:00:00Z' WHERE connector = 'zendesk'")
    tok = cluster.token()
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        codes = list(
            pool.map(
                lambda i: act(cluster.nodes[i % 2], "zendesk.list_my_tickets", tok).status_code, range(200)
            )
        )
    assert codes == [200] * 200, {c: codes.count(c) for c in set(codes)}
    assert refresh_grants() - before == 1, sb.stats()["token_grants"]
    recs = cluster.records(mark)
    refreshed = [r for r in recs if r["event"] == "connection.refreshed"]
    assert len(refreshed) == 1 and refreshed[0]["node"] in ("node-1", "node-2"), refreshed
    assert not [r for r in recs if r["event"] == "connection.refresh_failed"]
    served = {r["node"] for r in recs if r["event"] == "action.run" and r["outcome"] == "ok"}
    assert served == {"node-1", "node-2"}
    assert sql(
        cluster.url, "SELECT status, refresh_lease_owner FROM connections WHERE connector = 'zendesk'"
    ) == [("active", None)]


def test_a_lease_held_by_a_node_whose_heartbeat_lapsed_is_taken_over(cluster):
    """A node killed mid-refresh leaves its lease (valid for another hour here): once its heartbeat has lapsed,
    a live node takes the lease over instead of waiting for it to expire."""
    sb = cluster.sandbox
    before = sb.stats()["token_grants"].get("zendesk", {}).get("refresh_token", 0)
    now = time.time()
    sql(
        cluster.url,
        "INSERT INTO nodes (name, version, pid, host, started_at, last_seen) "
        "VALUES ('node-9', '0.1.0', 1, 'gone', '2026-01-01T00:00:00Z', %s)",
        now - 3600,
    )
    sql(
        cluster.url,
        "UPDATE connections SET refresh_lease_owner = 'node-9:4242:deadbeef', refresh_lease_until = %s, "
        "expires_at = '2020-01-01T00:00:00Z' WHERE connector = 'zendesk'",
        now + 3600,
    )
    sb.expire_oauth_tokens("zendesk")
    started = time.monotonic()
    r = act(cluster.nodes[1], "zendesk.list_my_tickets", cluster.token())
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 30  # not the lease's 90 s TTL, let alone its hour
    assert sb.stats()["token_grants"]["zendesk"]["refresh_token"] - before == 1
    assert sql(cluster.url, "SELECT refresh_lease_owner FROM connections WHERE connector = 'zendesk'") == [
        (None,)
    ]


def test_a_lapsed_nodes_pending_writes_are_recorded_by_a_live_node_once(cluster):
    """Writes a node left pending (killed after `action.started`, or before it) are recorded `unknown` /
    `error` with reason `interrupted` by a live node once the dead node's heartbeat has lapsed; never while it
    beats, and once however many live nodes look."""
    head = cluster.head()
    actor = json.dumps({"type": "visitor", "sub": "u-ada", "email": ADA}, sort_keys=True)
    sql(
        cluster.url,
        "INSERT INTO nodes (name, version, pid, host, started_at, last_seen) "
        "VALUES ('node-7', '0.1.0', 999, 'elsewhere', '2026-01-01T00:00:00Z', %s)",
        time.time() + 3600,
    )
    ids = [
        sql(
            cluster.url,
            "INSERT INTO pending_actions (workspace, action, connector, actor, request_id, owner, "
            "started_at, started_seq, node) VALUES (%s, %s, 'zendesk', %s, %s, 'elsewhere:999:cafe', "
            "'2026-01-01T00:00:00Z', %s, 'node-7') RETURNING id",
            WS,
            "zendesk.create_ticket",
            actor,
            f"req_dead{i}",
            seq,
        )[0][0]
        for i, seq in enumerate((head, None))
    ]
    time.sleep(6)  # three beats of each live node: node-7 still beats, its writes are its own
    assert sql(cluster.url, "SELECT count(*) FROM pending_actions")[0][0] == 2
    assert not [r for r in cluster.records(head) if r.get("request_id", "").startswith("req_dead")]

    sql(cluster.url, "UPDATE nodes SET last_seen = %s WHERE name = 'node-7'", time.time() - 3600)
    deadline = time.time() + 30
    while sql(cluster.url, "SELECT count(*) FROM pending_actions")[0][0]:
        assert time.time() < deadline, "a live node did not record the lapsed node's writes"
        time.sleep(0.5)
    time.sleep(3)  # a second live node looking after its next beat must find nothing left to record
    recs = [r for r in cluster.records(head) if (r.get("request_id") or "").startswith("req_dead")]
    got = sorted(
        (r["request_id"], r["event"], r["outcome"], r["reason"], r["detail"]["pending_id"]) for r in recs
    )
    assert got == [
        ("req_dead0", "action.run", "unknown", "interrupted", ids[0]),
        ("req_dead1", "action.run", "error", "interrupted", ids[1]),
    ]
    assert all(r["node"] in ("node-1", "node-2") for r in recs)


def test_a_jti_accepted_on_one_node_is_a_replay_on_the_other(cluster):
    """With the replay check on, the nodes share the accepted ids (in PostgreSQL): a token used on node 1 is
    refused on node 2, and the other way round; a fresh jti is accepted on either."""
    n1, n2 = cluster.nodes
    sh(n1.env, "identity", "rules", "-w", WS, "--jti-replay")
    try:
        now = int(time.time())

        def token(jti: str) -> str:
            claims = {"sub": "u-ada", "email": ADA, "aud": WS, "iat": now, "exp": now + 300, "jti": jti}
            return jwt.encode(claims, cluster.secret, algorithm="HS256", headers={"kid": cluster.kid})

        for first, second, jti in ((n1, n2, "jti-a"), (n2, n1, "jti-b")):
            tok = token(jti)
            assert act(first, "zendesk.list_my_tickets", tok).status_code == 200
            r = act(second, "zendesk.list_my_tickets", tok)
            assert r.status_code == 401, r.text
        mark = cluster.head()
        r = act(n2, "zendesk.list_my_tickets", token("jti-a"))
        assert r.status_code == 401
        denied = [x for x in cluster.records(mark) if x["event"] == "action.run"]
        assert len(denied) == 1 and denied[0]["node"] == "node-2" and denied[0]["outcome"] == "denied", denied
        assert "replayed" in json.dumps(denied[0]), denied
        assert sql(cluster.url, "SELECT count(*) FROM identity_jti")[0][0] == 2
    finally:
        sh(n1.env, "identity", "rules", "-w", WS, "--no-jti-replay")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed")
def test_the_documented_haproxy_config_spreads_load_and_routes_around_a_killed_node(cluster):
    """examples/cluster/haproxy.cfg as written, in front of both edges: round robin over both nodes; node 1
    killed (kill -9 of its supervisor, provider and edge) is taken out and node 2 serves; node 1 restarted
    is taken back."""
    n1, n2 = cluster.nodes
    lb_port = free_port()
    env = {
        **os.environ,
        "BOTCTL_LB_BIND": f"127.0.0.1:{lb_port}",
        "BOTCTL_NODE1": f"127.0.0.1:{n1.port}",
        "BOTCTL_NODE2": f"127.0.0.1:{n2.port}",
    }
    cfg = Path(__file__).resolve().parent.parent / "examples" / "cluster" / "haproxy.cfg"
    lb = subprocess.Popen(
        ["haproxy", "-db", "-f", str(cfg)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    tok = cluster.token()
    http = httpx.Client(base_url=f"http://127.0.0.1:{lb_port}", timeout=60)

    def through_lb(n: int) -> list[dict]:
        mark = cluster.head()
        codes = [
            http.post(
                f"/v1/workspaces/{WS}/actions/zendesk.list_my_tickets",
                json={"params": {}},
                headers={"Authorization": f"Bearer {tok}"},
            ).status_code
            for _ in range(n)
        ]
        assert codes == [200] * n, codes
        return [r for r in cluster.records(mark) if r["event"] == "action.run"]

    def wait_for(served: set[str]) -> None:
        """Until the health checks have caught up: meanwhile a request already sent to the killed edge fails
        (HAProxy never re-sends a request a server has received; it redispatches only refused connections)."""
        deadline, last = time.time() + 30, None
        while True:
            try:
                last = {r["node"] for r in through_lb(6)}
                if last == served:
                    return
            except (httpx.HTTPError, AssertionError) as exc:
                last = exc
            if time.time() >= deadline:
                ready = []
                for n in cluster.nodes:
                    try:
                        ready.append(
                            (n.name, n.port, httpx.get(f"http://127.0.0.1:{n.port}/readyz").status_code)
                        )
                    except httpx.HTTPError as exc:
                        ready.append(
                            (n.name, n.port, repr(exc), sh(n.env, "daemon", "status", check=False).stdout)
                        )
                lb.terminate()
                raise AssertionError(
                    f"the balancer did not settle on {served}: {last!r}; readyz {ready}; "
                    f"{lb.stderr.read().decode()[-1500:]}"
                )
            time.sleep(0.5)

    try:
        wait_for({"node-1", "node-2"})  # the balancer up and both health checks passed
        assert lb.poll() is None
        st = json.loads(sh(n1.env, "daemon", "status", "--json").stdout)
        for pid in (st["supervisor"]["pid"], st["provider"]["pid"], st["edge"]["pid"]):
            os.kill(pid, signal.SIGKILL)
        wait_for({"node-2"})
        assert {r["node"] for r in through_lb(10)} == {"node-2"}
        deadline = time.time() + 20  # the killed supervisor reaped (by init) before node 1 is started again
        while Path(f"/proc/{st['supervisor']['pid']}").exists():
            state = Path(f"/proc/{st['supervisor']['pid']}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            assert time.time() < deadline, f"the killed supervisor is still there (state {state})"
            time.sleep(0.2)
        r = sh(n1.env, *daemon_start_args(n1.port))
        assert "started" in r.stderr + r.stdout, r.stderr + r.stdout
        wait_for({"node-1", "node-2"})
    finally:
        lb.terminate()
        lb.wait(timeout=10)
        http.close()


def _kill_node(node: Node) -> None:
    """kill -9 of the node's supervisor, provider and edge; returns once init has reaped the supervisor."""
    st = json.loads(sh(node.env, "daemon", "status", "--json").stdout)
    for pid in (st["supervisor"]["pid"], st["provider"]["pid"], st["edge"]["pid"]):
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 20
    while Path(f"/proc/{st['supervisor']['pid']}").exists():
        assert time.time() < deadline, "the killed supervisor was not reaped"
        time.sleep(0.2)


def test_a_node_killed_mid_refresh_is_taken_over_by_another_once_it_lapses(cluster):
    """Node 1's refresh hangs at the authorization server, under its lease, with the row saying `sent`;
    node 1 is killed entirely. Node 2 takes the lease once node 1's heartbeat lapses and ends `active`
    (the stored refresh token sent once more) or `needs_reauth`: never a reused rotated token."""
    sb = cluster.sandbox
    n1, n2 = cluster.nodes
    grants = sb.stats()["token_grants"].get("zendesk", {}).get("refresh_token", 0)
    sb.expire_oauth_tokens("zendesk")
    sb.fault("zendesk", "hang", path="/oauth/tokens", method="POST", hang_seconds=60)
    tok = cluster.token()

    def row():
        return sql(
            cluster.url,
            "SELECT status, refresh_state, refresh_lease_owner FROM connections WHERE connector = 'zendesk'",
        )[0]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(act, n1, "zendesk.list_my_tickets", tok)
        deadline = time.time() + 20
        while not (
            row()[1] == "sent" and (row()[2] or "").startswith("node-1:") and not sb.state.faults.list()
        ):
            assert time.time() < deadline, f"the refresh did not hang at the token endpoint: {row()}"
            time.sleep(0.2)
        _kill_node(n1)
        with contextlib.suppress(httpx.HTTPError):
            fut.result(timeout=30)
    started = time.monotonic()
    r = act(n2, "zendesk.list_my_tickets", tok)
    took = time.monotonic() - started
    status, state, lease = row()
    assert lease is None and state in (None, "unknown"), row()
    if r.status_code == 200:
        assert status == "active" and sb.stats()["token_grants"]["zendesk"]["refresh_token"] == grants + 1
    else:
        assert (
            r.status_code == 409 and r.json()["error"]["code"] == "needs_reauth" and status == "needs_reauth"
        )
    assert not sb.stats()["oauth_events"].get("zendesk", {}).get("refresh_token_reuse")
    assert took < 40  # node 1's lapse (10 s), not the lease's 90 s TTL
    if status != "active":  # the operator reconnects, for the tests after this one
        oauth_connect_via_sandbox(n2.env, sb.url, "zendesk", WS, "--subdomain", "acme")
    sh(
        n1.env,
        "daemon",
        "start",
        "--port",
        str(n1.port),
        "--metrics-port",
        str(free_port()),
        "--ip-rate",
        "0",
        "--visitor-rate",
        "0",
    )


def test_a_plan_downgraded_or_key_removed_on_node_1_is_refused_on_node_2_at_once(cluster):
    """The documented bound (docs/deployment.md): providers keep no cache of plans or identity keys (each
    request reads them in PostgreSQL), so once the command on node 1 has returned, the very next request on
    node 2 is refused. Runs last in this module: it removes the workspace's key."""
    n1, n2 = cluster.nodes
    tok = cluster.token()
    assert act(n2, "zendesk.list_my_tickets", tok).status_code == 200
    sh(n1.env, "workspace", "set-plan", WS, "free")
    r = act(n2, "zendesk.list_my_tickets", tok)
    assert r.status_code == 403 and r.json()["error"]["code"] == "plan_required", r.text
    sh(n1.env, "workspace", "set-plan", WS, "pro")
    assert act(n2, "zendesk.list_my_tickets", tok).status_code == 200

    mark = cluster.head()
    sh(n1.env, "identity", "remove", cluster.kid, "-w", WS)
    r = act(n2, "zendesk.list_my_tickets", tok)
    assert r.status_code == 401, r.text
    refused = [x for x in cluster.records(mark) if x["event"] == "action.run"]
    assert [(x["node"], x["outcome"]) for x in refused] == [("node-2", "denied")], refused
