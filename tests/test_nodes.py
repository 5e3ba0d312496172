"""Several nodes on one PostgreSQL database (issue #15), on the real server at 127.0.0.1:5432: each test makes
its own database (`pg_url`) and drops it. Nodes are separate homes (each its own master-key source, its own
run directory) sharing the database URL, as separate machines would."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest

from botctl import crypto
from cluster_kit import free_port, sql

pytestmark = pytest.mark.slow


def botctl(home, key: str, *args: str, extra: dict | None = None, timeout: float = 90):
    env = {
        **os.environ,
        "BOTCTL_HOME": str(home),
        "BOTCTL_MASTER_KEY": key,
        "BOTCTL_NO_KEYRING": "1",
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "botctl", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def new_key() -> str:
    return base64.b64encode(crypto.new_key()).decode()


def snapshot(url: str):
    return (
        sql(url, "SELECT key, value FROM meta ORDER BY key"),
        sql(url, "SELECT name FROM workspaces ORDER BY name"),
        sql(url, "SELECT seq, hash FROM records ORDER BY seq"),
        sql(url, "SELECT * FROM nodes ORDER BY name"),
    )


def test_a_node_joins_only_with_the_master_key_that_opens_the_database(pg_url, tmp_path):
    key, wrong = new_key(), new_key()
    n1, n2 = tmp_path / "node1", tmp_path / "node2"
    r = botctl(n1, key, "init", "--database", pg_url, "--node", "node-1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["node"] == "node-1" and json.loads(r.stdout)["joined"] is False
    assert botctl(n1, key, "workspace", "create", "acme", "--plan", "pro").returncode == 0
    before = snapshot(pg_url)

    # Another machine with another key: refused (exit 5), its home not made, the database untouched.
    r = botctl(n2, wrong, "init", "--database", pg_url, "--node", "node-2")
    assert r.returncode == 5, r.stderr
    assert "does not open" in r.stderr and "Traceback" not in r.stderr and wrong not in r.stderr + r.stdout
    assert not (n2 / "database.url").exists() and not (n2 / "node.name").exists()
    assert snapshot(pg_url) == before
    # No key at all: refused the same way (a new key is never made for an existing database).
    r = botctl(n2, "", "init", "--database", pg_url, "--node", "node-2")
    assert r.returncode == 5 and not (n2 / "database.url").exists(), r.stderr
    assert snapshot(pg_url) == before
    # A bad node name: a usage error, nothing written.
    r = botctl(n2, key, "init", "--database", pg_url, "--node", "Node 2!")
    assert r.returncode == 2 and "node name" in r.stderr and not (n2 / "database.url").exists()

    # The same key: it joins, and serves the same workspaces.
    r = botctl(n2, key, "init", "--database", pg_url, "--node", "node-2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["joined"] is True and out["node"] == "node-2" and out["database"]["backend"] == "postgresql"
    assert (n2 / "node.name").read_text().strip() == "node-2"
    r = botctl(n2, key, "workspace", "list", "--json")
    assert [w["name"] for w in json.loads(r.stdout)] == ["acme"], r.stdout
    assert botctl(n2, key, "workspace", "create", "beta", "--plan", "free").returncode == 0
    assert botctl(n2, key, "init", "--node", "node-3").returncode == 2  # a node keeps its name

    # Every record names the node that wrote it; the chain verifies from either node, and the MAC covers it.
    rows = sql(pg_url, "SELECT body FROM records ORDER BY seq")
    bodies = [json.loads(b) for (b,) in rows]
    assert all("node" in b for b in bodies)
    created = {b["workspace"]: b["node"] for b in bodies if b["event"] == "workspace.created"}
    assert created == {"acme": "node-1", "beta": "node-2"}
    for home in (n1, n2):
        v = botctl(home, key, "audit", "verify", "--json")
        assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True, v.stdout + v.stderr
    seq = next(
        i + 1 for i, b in enumerate(bodies) if b["event"] == "workspace.created" and b["node"] == "node-2"
    )
    forged = rows[seq - 1][0].replace('"node":"node-2"', '"node":"node-1"')
    sql(pg_url, "UPDATE records SET body = %s WHERE seq = %s", forged, seq)
    v = botctl(n1, key, "audit", "verify", "--json")
    assert v.returncode != 0 and json.loads(v.stdout)["first_bad_seq"] == seq, v.stdout


def test_one_sqlite_machine_grows_into_two_nodes(pg_url, tmp_path):
    """The README's path from one machine to several: the SQLite home moved into PostgreSQL (`db copy
    --switch`), named as a node (`init --node`), then a second machine joins; both see the same chain."""
    key = new_key()
    n1, n2 = tmp_path / "node1", tmp_path / "node2"
    assert botctl(n1, key, "workspace", "create", "acme", "--plan", "pro").returncode == 0
    r = botctl(n1, key, "db", "copy", "--to", pg_url, "--switch")
    assert r.returncode == 0, r.stderr
    r = botctl(n1, key, "init", "--node", "node-1")
    assert r.returncode == 0 and "is now node node-1" in r.stderr + r.stdout, r.stderr
    r = botctl(n2, key, "init", "--database", pg_url, "--node", "node-2", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["joined"] is True, r.stderr
    assert botctl(n2, key, "workspace", "create", "beta", "--plan", "free").returncode == 0
    assert botctl(n1, key, "workspace", "create", "gamma", "--plan", "free").returncode == 0
    bodies = [json.loads(b) for (b,) in sql(pg_url, "SELECT body FROM records ORDER BY seq")]
    created = {b["workspace"]: b.get("node") for b in bodies if b["event"] == "workspace.created"}
    assert created == {"acme": None, "beta": "node-2", "gamma": "node-1"}  # acme: made on SQLite
    for home in (n1, n2):
        v = botctl(home, key, "audit", "verify", "--json")
        assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True, v.stdout + v.stderr


def test_each_running_node_beats_and_status_cluster_lists_alive_and_lapsed(pg_url, tmp_path):
    key = new_key()
    homes = {name: tmp_path / name for name in ("node-1", "node-2")}
    for name, home in homes.items():
        assert botctl(home, key, "init", "--database", pg_url, "--node", name).returncode == 0
    r = botctl(homes["node-1"], key, "daemon", "status", "--cluster")
    assert r.returncode == 0 and "no node" in r.stderr, r.stdout + r.stderr
    started = []
    try:
        for home in homes.values():
            r = botctl(
                home, key, "daemon", "start", "--port", str(free_port()), "--metrics-port", str(free_port())
            )
            assert r.returncode == 0, r.stderr
            started.append(home)
        r = botctl(homes["node-2"], key, "daemon", "status", "--cluster", "--json")
        listed = json.loads(r.stdout)
        assert [(n["name"], n["alive"]) for n in listed["nodes"]] == [("node-1", True), ("node-2", True)]
        assert all(n["version"] and n["last_seen_s_ago"] < 10 for n in listed["nodes"])
        first = sql(pg_url, "SELECT last_seen FROM nodes WHERE name = 'node-1'")[0][0]
        deadline = time.time() + 20
        while sql(pg_url, "SELECT last_seen FROM nodes WHERE name = 'node-1'")[0][0] == first:
            assert time.time() < deadline, "node-1 wrote no second heartbeat"
            time.sleep(0.5)
        assert botctl(homes["node-2"], key, "daemon", "stop").returncode == 0
        started.remove(homes["node-2"])
        # node-2 stopped beating: with a 3 s lapse it is listed as lapsed, node-1 still alive.
        deadline = time.time() + 30
        while True:
            r = botctl(
                homes["node-1"], key, "daemon", "status", "--cluster", extra={"BOTCTL_NODE_LAPSE_S": "3"}
            )
            if "\tlapsed\t" in r.stdout:
                break
            assert time.time() < deadline, r.stdout
            time.sleep(1)
        rows = {
            line.split("\t")[0]: line.split("\t")
            for line in r.stdout.splitlines()
            if line.startswith("node-")
        }
        assert (
            rows["node-1"][1] == "alive"
            and rows["node-2"][1] == "lapsed"
            and "1 of 2 node(s) alive" in r.stderr
        )
    finally:
        for home in started:
            botctl(home, key, "daemon", "stop")


def test_status_cluster_on_a_sqlite_home_says_it_is_one_machine(tmp_path):
    key = new_key()
    assert botctl(tmp_path / "h", key, "init").returncode == 0
    r = botctl(tmp_path / "h", key, "daemon", "status", "--cluster")
    assert r.returncode == 2 and "SQLite" in r.stderr and "Traceback" not in r.stderr
