"""Nodes: several botctl machines sharing one PostgreSQL database (issue #15).

A node is a home whose tables live in PostgreSQL. Its name is the home's `node.name` file (written by
`botctl init --database URL --node NAME`), else `BOTCTL_NODE`, else the host name. A SQLite home is one
machine and has no node name (its records carry no `node` field).

* every audit record a node's processes write names the node (the body's `node` member, MACed like the rest);
* the running provider writes its node's heartbeat row (`nodes`: version, pid, started, last seen) every
  `HEARTBEAT_S`; a node whose last beat is older than `LAPSE_S` is lapsed (`botctl daemon status --cluster`);
* a lapsed node's pending vendor writes are recorded `unknown`/`interrupted` by a live node (botctl/intents.py),
  and a refresh lease it held is taken over (botctl/oauth/refreshing.py).
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from botctl.errors import UsageError

NODE_FILE = "node.name"
ENV = "BOTCTL_NODE"
HEARTBEAT_S = float(os.environ.get("BOTCTL_NODE_HEARTBEAT_S", "2"))
# A node not seen for this long is treated as dead: 5 missed beats. Long enough that a stalled event loop or
# a slow PostgreSQL moment does not declare a live node dead; short enough that a dead node's pending
# writes are on record within seconds.
LAPSE_S = float(os.environ.get("BOTCTL_NODE_LAPSE_S", "10"))
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(
            f"{name!r} is not a usable node name.",
            hint="Use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (e.g. node-1).",
        )
    return name


def default_name() -> str:
    host = socket.gethostname().lower().split(".")[0]
    host = re.sub(r"[^a-z0-9._-]", "-", host).lstrip("._-")[:63]
    return host or "node"


def configured(home_path: Path) -> str:
    """This home's node name (only meaningful when its database is PostgreSQL)."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return check_name(env)
    try:
        text = (home_path / NODE_FILE).read_text().strip()
    except FileNotFoundError:
        return default_name()
    return text or default_name()


def save(home_path: Path, name: str) -> None:
    from botctl.home import write_private_file

    write_private_file(home_path / NODE_FILE, (check_name(name) + "\n").encode())


def beat(conn: Any, name: str, version: str, started_at: str, *, now: float | None = None) -> None:
    """The node's heartbeat: one autocommitted upsert (no write lock: it never waits for the chain)."""
    conn.execute(
        "INSERT INTO nodes (name, version, pid, host, started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET version = excluded.version, pid = excluded.pid, host = excluded.host, "
        "started_at = excluded.started_at, last_seen = excluded.last_seen",
        (name, version, os.getpid(), socket.gethostname(), started_at, time.time() if now is None else now),
    )


def listing(conn: Any, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every node that ever beat, alive or lapsed, by name."""
    now = time.time() if now is None else now
    rows = conn.execute(
        "SELECT name, version, pid, host, started_at, last_seen FROM nodes ORDER BY name"
    ).fetchall()
    return [
        {
            "name": n,
            "version": v,
            "pid": pid,
            "host": host,
            "started_at": started,
            "last_seen_s_ago": round(now - seen, 1),
            "alive": now - seen <= LAPSE_S,
        }
        for n, v, pid, host, started, seen in rows
    ]


def lapsed(conn: Any, *, now: float | None = None) -> set[str]:
    """Names of nodes whose heartbeat is older than LAPSE_S."""
    now = time.time() if now is None else now
    rows = conn.execute("SELECT name FROM nodes WHERE last_seen < ?", (now - LAPSE_S,)).fetchall()
    return {r[0] for r in rows}
