"""The cluster chaos proof (issue #15): a node killed entirely under load, then restarted, loses nothing.

Two full nodes (supervisor, provider and edge each; their own homes and ports; one PostgreSQL database; one
master key) and a third, edge-only process (`botctl edge start`, mutual TLS) reaching node 1's provider on
its `--provider-listen` port. An open-loop client sends verified actions at a fixed rate, round robin over
the three edges: reads and vendor writes (Zendesk tickets in the sandbox, each with a unique subject), for
ten visitors with their own identity tokens, each request with its own X-Request-Id.

Mid-load, node 1's supervisor, provider and edge are killed with SIGKILL. Two writes of node 1's are held
at the vendor at that moment (the "probes", after their `action.started` records): one the vendor has not
applied (sent through the edge-only process), one it has (through node 1's own edge), so every run cuts off
both kinds. Node 2 must keep answering 200; node 1's edge answers nothing and the edge-only process answers
`503 provider_unavailable` at once. Once node 1's heartbeat
has lapsed, node 2 records node 1's pending writes `unknown` / `interrupted`. Node 1 is started again (what
an operator does: `botctl daemon start`), the edge-only process reconnects by itself, and the load goes on to
all three edges.

Then: every 200 has exactly one `ok` record, made by the node whose provider served it; no request has two
records; every write the vendor applied has an outcome record, and none was applied twice (the sandbox's
own tickets, counted by subject); every `action.started` has its outcome; nothing stays pending;
`botctl audit verify` passes; the records name both nodes.

Node 1 runs in a UTS namespace of its own (`unshare --uts`, another host name) where the machine allows it:
node 2 cannot then see that node 1's processes are gone (another host's pids) and must wait for the
heartbeat to lapse, as it would with two machines (BOTCTL_CHAOS_ONE_HOST=1 runs both under the machine's
name: node 2 then sees node 1's pids gone and records its writes sooner). Heartbeat and lapse are shortened
(BOTCTL_NODE_*). The load's random choices come from a seed, printed with `-s`: BOTCTL_CHAOS_SEED replays it.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest

from botctl import crypto
from botctl.demo import oauth_connect_via_sandbox
from cluster_kit import WS, daemon_start_args, join_nodes, ready, sh, sql, until
from test_daemon import free_port
from test_edge_remote import RemoteEdge

pytestmark = pytest.mark.slow

RATE = 30.0  # requests per second, over the three edges together
PHASE_S = 6.0  # load before the kill, and after the restart
DOWN_S = 6.0  # at least this long with node 1 dead
VISITORS = 10  # not a multiple of 3: each visitor's requests reach every edge
WRITE = "zendesk.create_ticket"
READS = ("zendesk.list_my_tickets", "stripe.list_my_invoices")
HEARTBEAT_S, LAPSE_S = 0.5, 3.0
NODE1_HOST = "chaos-node-1"
SEED = int(os.environ.get("BOTCTL_CHAOS_SEED") or time.time_ns() % 2**31)


def _uts_namespace_works() -> bool:
    if os.environ.get("BOTCTL_CHAOS_ONE_HOST") == "1" or shutil.which("unshare") is None:
        return False
    probe = [
        "unshare",
        "--uts",
        sys.executable,
        "-c",
        f"import socket; socket.sethostname({NODE1_HOST!r})",
    ]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


# Run a command under another host name (inside `unshare --uts`): argv[1] is the name, the rest the argv.
_AS_HOST = "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"


@dataclass
class Node:
    name: str
    home: Path
    env: dict
    port: int
    extra: tuple[str, ...] = ()
    host: str | None = None  # a host name of its own (UTS namespace), or the machine's

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "botctl",
            *daemon_start_args(self.port, *self.extra),
        ]
        if self.host:
            argv = ["unshare", "--uts", sys.executable, "-c", _AS_HOST, self.host, *argv]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0 and "started" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

    def pids(self) -> dict[str, int]:
        st = json.loads(sh(self.env, "daemon", "status", "--json").stdout)
        pids = {"supervisor": st["supervisor"]["pid"], "provider": st["provider"]["pid"]}
        pids["edge"] = st["edge"]["pid"]
        assert all(pids.values()), st
        return pids


@dataclass
class Edge:
    name: str
    url: str
    serves_for: str  # the node whose provider runs its actions


@dataclass
class Sent:
    i: int
    rid: str
    edge: Edge
    action: str
    scheduled: float
    sent: float = 0.0
    answered: float = 0.0
    status: int | None = None  # None: no HTTP answer
    code: str | None = None  # the error code, or the exception's name
    problem: str | None = None  # a malformed answer


@dataclass
class Probe:
    """A write sent on its own, to be held at the vendor (sandbox fault `fault`) when its node is killed."""

    name: str
    edge: Edge
    fault: str
    token: str
    rid: str = field(default_factory=lambda: "req_probe" + uuid.uuid4().hex[:16])
    answer: dict = field(default_factory=dict)
    thread: threading.Thread | None = None

    def _send(self) -> None:
        try:
            r = httpx.post(
                f"{self.edge.url}/v1/workspaces/{WS}/actions/{WRITE}",
                json={"params": {"subject": f"chaos {self.rid}", "description": f"{self.name} probe"}},
                headers={"Authorization": f"Bearer {self.token}", "X-Request-Id": self.rid},
                timeout=30,
            )
            self.answer.update(status=r.status_code, body=r.json())
        except httpx.HTTPError as exc:
            self.answer.update(status=None, error=type(exc).__name__)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._send, name=f"probe-{self.name}", daemon=True)
        self.thread.start()


@dataclass
class Load:
    """Open loop: request i leaves at start + i / RATE whatever the earlier ones are doing."""

    edges: list[Edge]
    tokens: list[str]
    rng: random.Random
    writes_paused: threading.Event = field(default_factory=threading.Event)
    sent: list[Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One client per edge, shared by the workers (making one per thread costs the driver's GIL ~20 ms
        # of SSL set-up each: enough to make requests leave late).
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        for e in self.edges:
            self._clients[e.name] = httpx.Client(
                base_url=e.url, timeout=httpx.Timeout(15.0, connect=3.0), limits=limits
            )

    def _one(self, s: Sent, params: dict, token: str) -> None:
        s.sent = time.monotonic()
        try:
            r = self._clients[s.edge.name].post(
                f"/v1/workspaces/{WS}/actions/{s.action}",
                json={"params": params},
                headers={"Authorization": f"Bearer {token}", "X-Request-Id": s.rid},
            )
        except httpx.HTTPError as exc:
            s.answered, s.code = time.monotonic(), type(exc).__name__
            return
        s.answered, s.status = time.monotonic(), r.status_code
        try:
            body = r.json()
        except ValueError:
            s.problem = f"not JSON: {r.text[:200]!r}"
            return
        if r.headers.get("x-request-id") != s.rid or body.get("request_id") != s.rid:
            s.problem = f"request id {r.headers.get('x-request-id')!r}/{body.get('request_id')!r}"
        elif r.status_code == 200:
            if body.get("ok") is not True or body.get("action") != s.action:
                s.problem = f"bad 200 body {str(body)[:200]}"
        else:
            error = body.get("error")
            s.code = error.get("code") if isinstance(error, dict) else None
            if not s.code or "Traceback" in r.text:
                s.problem = f"unstable error {r.status_code}: {r.text[:300]!r}"

    def run(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(48, thread_name_prefix="chaos-load") as pool:
            start, i = time.monotonic(), 0
            while not self._stop.is_set():
                edge = self.edges[i % len(self.edges)]
                rid = "req_" + uuid.uuid4().hex[:20]
                visitor = self.rng.randrange(VISITORS)
                with self._lock:  # pause_writes() returns after the last write is listed, before any read
                    if not self.writes_paused.is_set() and self.rng.random() < 1 / 3:
                        action = WRITE
                        params = {"subject": f"chaos {rid}", "description": f"chaos load, request {i}"}
                    else:
                        action, params = self.rng.choice(READS), {}
                    s = Sent(i, rid, edge, action, scheduled=start + i / RATE)
                    self.sent.append(s)
                pool.submit(self._one, s, params, self.tokens[visitor])
                i += 1
                time.sleep(max(0.0, start + i / RATE - time.monotonic()))
        for c in self._clients.values():
            c.close()

    def pause_writes(self) -> list[Sent]:
        """Reads only from now on; the writes sent so far."""
        with self._lock:
            self.writes_paused.set()
            return [s for s in self.sent if s.action == WRITE]

    def stop(self) -> None:
        self._stop.set()


def _token(secret: str, kid: str, v: int) -> str:
    now = int(time.time())
    claims = {
        "sub": f"u-visitor-{v}",
        "email": f"visitor{v}@example.com",
        "name": f"Visitor {v}",
        "aud": WS,
        "iat": now,
        "exp": now + 900,
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def _kill_node(node: Node) -> tuple[dict[str, int], float]:
    """kill -9 of the node's supervisor, provider and edge, all at once: the pids and the moment (monotonic);
    returns once init has reaped them."""
    pids = node.pids()
    for what, pid in pids.items():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert (b"botctld" if what == "edge" else b"botctl") in cmdline, (what, cmdline)
    killed_at = time.monotonic()
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids.values()),
        20,
        "the killed processes to be reaped",
    )
    return pids, killed_at


@pytest.fixture
def chaos(sandbox_server, tmp_path, pg_url):
    sb = sandbox_server
    sb.reset()
    sb.configure(auto_approve=True)
    key = base64.b64encode(crypto.new_key()).decode()
    separate_host = _uts_namespace_works()
    provider_port = free_port()
    nodes: list[Node] = []
    remote: RemoteEdge | None = None
    try:
        timing = {"BOTCTL_NODE_HEARTBEAT_S": str(HEARTBEAT_S), "BOTCTL_NODE_LAPSE_S": str(LAPSE_S)}
        for name, home, env in join_nodes(tmp_path, pg_url, key, **timing):
            nodes.append(Node(name, home, env, free_port()))
        n1, n2 = nodes
        sh(n1.env, "workspace", "create", WS, "--plan", "pro")
        rot = json.loads(sh(n1.env, "identity", "rotate", "-w", WS, "--json").stdout)
        oauth_connect_via_sandbox(n1.env, sb.url, "zendesk", WS, "--subdomain", "acme")
        sh(
            n1.env,
            "connect",
            "stripe",
            "-w",
            WS,
            "--sandbox",
            sb.url,
            "--api-key-stdin",
            input=sb.credentials()["stripe"]["api_key"] + "\n",
        )
        # Node 1's provider listens for remote edges; the edge host gets its certificate, key and the CA's.
        sh(n1.env, "cluster", "ca", "init")
        sh(n1.env, "cluster", "cert", "issue", "provider")
        edge_host = tmp_path / "edge-host"
        sh(n1.env, "cluster", "cert", "issue", "edge-1", "--out", str(edge_host))
        shutil.copy(n1.home / "cluster" / "ca.crt", edge_host / "ca.crt")
        n1.extra = ("--provider-listen", f"127.0.0.1:{provider_port}")
        n1.host = NODE1_HOST if separate_host else None
        for n in nodes:
            n.start()
        remote = RemoteEdge(edge_host, provider_port)
        edges = [
            Edge("node-1", f"http://127.0.0.1:{n1.port}", "node-1"),
            Edge("node-2", f"http://127.0.0.1:{n2.port}", "node-2"),
            Edge("edge-only", f"http://127.0.0.1:{remote.port}", "node-1"),
        ]
        for e in edges:
            until(lambda e=e: ready(e.url), 30, f"{e.name} to be ready")
        yield {
            "url": pg_url,
            "nodes": nodes,
            "edges": edges,
            "remote": remote,
            "secret": rot["secret"],
            "kid": rot["kid"],
            "sandbox": sb,
            "separate_host": separate_host,
        }
    finally:
        sb.clear_faults()
        if remote is not None:
            remote.stop()
        for n in nodes:
            sh(n.env, "daemon", "stop", check=False)


def _records(url: str) -> list[dict]:
    return [{"seq": s, **json.loads(b)} for s, b in sql(url, "SELECT seq, body FROM records ORDER BY seq")]


def test_a_node_killed_entirely_under_load_and_restarted_loses_nothing(chaos):
    url, (n1, n2), edges, sb = chaos["url"], chaos["nodes"], chaos["edges"], chaos["sandbox"]
    by_name = {e.name: e for e in edges}
    tokens = [_token(chaos["secret"], chaos["kid"], v) for v in range(VISITORS)]
    print(
        f"\nchaos seed {SEED} (replay: BOTCTL_CHAOS_SEED={SEED}); node 1 on its own host name: "
        f"{chaos['separate_host']}"
    )
    load = Load(edges, tokens, random.Random(SEED))
    began = time.monotonic()
    driver = threading.Thread(target=load.run, name="chaos-driver", daemon=True)
    driver.start()
    # Two writes of node 1's held at the vendor when node 1 dies, both after their action.started record:
    # one through the edge-only process that the vendor never applies (`hang`), one through node 1's own
    # edge that it has applied (`write_then_hang`). The load's writes pause meanwhile: a fault takes the
    # next ticket POST, which must be the probe's.
    probes = [
        Probe("not applied", by_name["edge-only"], "hang", tokens[0]),
        Probe("applied", by_name["node-1"], "write_then_hang", tokens[1]),
    ]
    try:
        time.sleep(PHASE_S)
        writes = load.pause_writes()
        until(lambda: all(s.answered for s in writes), 15, "the writes under way to finish")
        for p in probes:
            sb.fault("zendesk", p.fault, path="/tickets.json", method="POST", hang_seconds=60)
            p.start()
            until(
                lambda p=p: (
                    not sb.state.faults.list()
                    and sql(
                        url,
                        "SELECT node FROM pending_actions WHERE request_id = %s AND started_seq IS NOT NULL",
                        p.rid,
                    )
                    == [("node-1",)]
                ),
                15,
                f"the {p.name} probe to be held at the vendor on node 1",
                lambda p=p: (
                    sb.state.faults.list(),
                    p.answer,
                    sql(url, "SELECT request_id, node, owner, started_seq FROM pending_actions"),
                ),
            )
        time.sleep(0.2)
        assert not any(p.answer for p in probes), [p.answer for p in probes]
        ticket_subjects = {t["subject"] for t in list(sb.state.stores["zendesk"].tickets.values())}
        assert [f"chaos {p.rid}" in ticket_subjects for p in probes] == [False, True]
        load.writes_paused.clear()
        time.sleep(0.3)  # the load's writes under way again on node 1 too
        killed_pids, kill_at = _kill_node(n1)
        for p in probes:
            p.thread.join(timeout=20)
            assert p.answer, f"the {p.name} probe's visitor was left hanging by {p.edge.name}"

        # Node 1's pending writes: recorded by node 2 once node 1's heartbeat has lapsed.
        until(
            lambda: sql(url, "SELECT count(*) FROM pending_actions WHERE node = 'node-1'")[0][0] == 0,
            LAPSE_S + 20,
            "node 2 to record node 1's pending writes",
        )
        recorded_after = time.monotonic() - kill_at
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - kill_at)))
        cluster_down = json.loads(sh(n2.env, "daemon", "status", "--cluster", "--json").stdout)

        # The operator starts node 1 again; the edge-only process finds its provider back by itself.
        restart_at = time.monotonic()
        n1.start()
        until(lambda: ready(by_name["edge-only"].url), 30, "the edge-only process to reach node 1 again")
        restarted_at = time.monotonic()
        time.sleep(PHASE_S)
    finally:
        load.stop()
        driver.join(timeout=60)
    assert not driver.is_alive(), "requests still hanging 60 s after the load stopped"
    ran_s = time.monotonic() - began
    sb.clear_faults()
    until(lambda: sql(url, "SELECT count(*) FROM pending_actions")[0][0] == 0, 30, "nothing pending")

    sent = load.sent
    assert all(s.answered for s in sent), "a request never finished"

    def phase(s: Sent) -> str:
        if s.answered < kill_at:
            return "before"
        if s.sent < kill_at:
            return "in flight at the kill"
        if s.answered < restart_at:
            return "node 1 down"
        if s.sent < restarted_at:
            return "node 1 restarting"
        return "after"

    table = collections.Counter((phase(s), s.edge.name, s.status or s.code) for s in sent)
    summary = "\n".join(f"  {p:22} {e:9} {what}: {n}" for (p, e, what), n in sorted(table.items(), key=str))
    print(
        f"{len(sent)} requests in {ran_s:.1f}s; node 1 killed (pids {killed_pids}) at +{kill_at - began:.1f}s, "
        f"its writes recorded by node 2 {recorded_after:.1f}s later, restarted at "
        f"+{restart_at - began:.1f}s, serving again {restarted_at - restart_at:.1f}s later\n{summary}"
    )

    # -- the answers ----------------------------------------------------------------------------------
    bad = [s for s in sent if s.problem]
    assert not bad, f"malformed answers: {bad[:5]}"
    late = max(sent, key=lambda s: s.sent - s.scheduled)
    print(f"latest departure: {late.sent - late.scheduled:.2f}s late, at +{late.scheduled - began:.1f}s")
    assert late.sent - late.scheduled < 2.0, f"the load was not open-loop: {late}"
    slowest = max(sent, key=lambda s: s.answered - s.sent)
    assert slowest.answered - slowest.sent < 10, f"a request took {slowest.answered - slowest.sent:.1f}s"

    def ok(p: str, edge: str | None = None) -> int:
        return sum(
            1 for s in sent if s.status == 200 and phase(s) == p and (edge is None or s.edge.name == edge)
        )

    # Node 2 never stopped serving: every request to its edge, in every phase, was answered 200.
    node2 = [s for s in sent if s.edge.name == "node-2"]
    assert all(s.status == 200 for s in node2), collections.Counter(
        (phase(s), s.status, s.code) for s in node2 if s.status != 200
    )
    assert [s for s in sent if phase(s) == "before" and s.status != 200] == []
    assert [s for s in sent if phase(s) == "after" and s.status != 200] == []
    for s in sent:
        if s.status == 200 or phase(s) in ("before", "after"):
            continue
        if s.edge.name == "node-1":  # its edge was killed: no HTTP answer at all
            assert s.status is None, s
        else:  # the edge-only process is alive, its provider is not: a clean 503, at once
            assert (s.status, s.code) == (503, "provider_unavailable"), s
            assert s.answered - s.sent < 5, s
    assert ok("before") >= 0.7 * RATE * PHASE_S, summary
    assert ok("node 1 down", "node-2") >= 0.2 * RATE * DOWN_S, summary
    assert not ok("node 1 down", "node-1") and not ok("node 1 down", "edge-only"), summary
    for e in edges:
        assert ok("after", e.name) >= 0.2 * RATE * PHASE_S, summary
    # The probes' visitors: a clean 503 from the edge-only process, no answer from the killed edge.
    held, applied_probe = probes
    assert held.answer.get("status") == 503, held.answer
    assert held.answer["body"]["error"]["code"] == "provider_unavailable", held.answer
    assert applied_probe.answer.get("status") is None, applied_probe.answer
    probe_rids = {p.rid for p in probes}

    # -- the audit trail ------------------------------------------------------------------------------
    ours = {s.rid: s for s in sent}
    records = _records(url)
    runs: dict[str, list[dict]] = collections.defaultdict(list)
    started: set[str] = set()
    for rec in records:
        rid = rec.get("request_id")
        if rid in ours or rid in probe_rids:
            if rec["event"] == "action.run":
                runs[rid].append(rec)
            elif rec["event"] == "action.started":
                started.add(rid)
    twice = {rid: [(r["node"], r["outcome"]) for r in v] for rid, v in runs.items() if len(v) != 1}
    assert not twice, f"requests with more than one outcome record: {dict(list(twice.items())[:5])}"
    for s in sent:
        if s.status == 200:
            (rec,) = runs.get(s.rid) or [None]
            assert rec and rec["outcome"] == "ok" and rec["action"] == s.action, (s, rec)
            assert rec["node"] == s.edge.serves_for, (s, rec)
            assert rec["actor"]["email"].startswith("visitor"), rec
    assert started <= set(runs), f"writes started without an outcome: {sorted(started - set(runs))[:5]}"
    assert sql(url, "SELECT count(*) FROM pending_actions")[0][0] == 0

    # The probes and whatever else node 1 had under way: on record by node 2, as interrupted.
    interrupted = {rid: v[0] for rid, v in runs.items() if v[0].get("reason") == "interrupted"}
    for p in probes:
        assert p.rid in interrupted, (p.name, runs.get(p.rid))
        assert (interrupted[p.rid]["outcome"], interrupted[p.rid]["node"]) == ("unknown", "node-2")
        assert interrupted[p.rid]["actor"]["email"].startswith("visitor")
    for rid, rec in interrupted.items():
        assert rec["node"] == "node-2" and rec["outcome"] in ("unknown", "error"), rec
        assert rid in probe_rids or ours[rid].edge.serves_for == "node-1", (ours[rid], rec)
    if chaos["separate_host"]:
        # Node 2 cannot see another host's processes: it waited for node 1's heartbeat to lapse.
        assert LAPSE_S - 2 * HEARTBEAT_S <= recorded_after <= LAPSE_S + 10, recorded_after
    nodes_down = {n["name"]: n["alive"] for n in cluster_down["nodes"]}
    assert nodes_down == {"node-1": False, "node-2": True}, cluster_down

    # -- the vendor's side: every applied write on record, none applied twice ----------------------------
    writes = {rid for rid, s in ours.items() if s.action == WRITE} | probe_rids
    tickets = collections.Counter(
        t["subject"][len("chaos ") :]
        for t in list(sb.state.stores["zendesk"].tickets.values())
        if t["subject"].startswith("chaos ")
    )
    assert set(tickets) <= writes, "a ticket no request asked for"
    assert all(n == 1 for n in tickets.values()), [rid for rid, n in tickets.items() if n > 1]
    applied = set(tickets)
    assert held.rid not in applied and applied_probe.rid in applied
    assert applied <= set(runs), f"applied without an outcome record: {sorted(applied - set(runs))[:5]}"
    assert all(runs[rid][0]["outcome"] in ("ok", "unknown") for rid in applied)
    assert {rid for rid in writes if runs.get(rid) and runs[rid][0]["outcome"] == "ok"} <= applied
    writes_ok = sum(1 for rid in writes if rid in ours and ours[rid].status == 200)
    assert writes_ok >= 0.2 * len(sent) / 3, (writes_ok, len(writes))

    # -- the chain and the nodes ----------------------------------------------------------------------
    for n in (n1, n2):
        assert sh(n.env, "audit", "verify").returncode == 0
    served = collections.Counter(r["node"] for v in runs.values() for r in v if r["outcome"] == "ok")
    assert set(served) == {"node-1", "node-2"}, served
    assert any(
        r["node"] == "node-1" and ours[rid].sent >= restarted_at
        for rid, v in runs.items()
        if rid in ours
        for r in v
    ), "the restarted node 1 recorded nothing"
    cluster = json.loads(sh(n2.env, "daemon", "status", "--cluster", "--json").stdout)
    assert {n["name"]: n["alive"] for n in cluster["nodes"]} == {"node-1": True, "node-2": True}, cluster
    print(
        f"writes: {len(writes)} sent, {len(applied)} applied at the vendor, {writes_ok} answered 200, "
        f"{len(interrupted)} recorded interrupted by node 2; records by node: {dict(served)}"
    )
