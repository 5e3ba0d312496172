"""Where audit shipping and alerting keep their state: `shipping.db` in the home, apart from audit.db
and vault.db (a broken or rolled-back log must not take the news of it down with it).

Tables: `sinks` (a destination and its persisted cursor: the last record delivered, its hash, failures,
the next attempt), `alert_hooks` (a webhook and its cursor over `alert_events`), `alert_events` (the
alerts raised, in order) and `meta` (`alert_scan_seq`: how far the audit log was read for alerts).
No secret is stored: a webhook's signing secret is named by an environment variable.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from botctl import store
from botctl.errors import BotctlError, NotFound, UsageError
from botctl.home import Home

SINK_KINDS = ("file", "syslog", "webhook")
MIGRATIONS = [
    """
    CREATE TABLE sinks (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'syslog', 'webhook')),
        target TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        delivered_seq INTEGER NOT NULL DEFAULT 0,
        delivered_hash TEXT,
        delivered_at TEXT,
        anchored_at REAL,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE alert_hooks (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        secret_env TEXT NOT NULL,
        created_at TEXT NOT NULL,
        delivered_id INTEGER NOT NULL DEFAULT 0,
        delivered_at TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
]


MAX_BACKOFF_S = 300.0


def backoff(failures: int) -> float:
    """Seconds before the next attempt after `failures` in a row (sinks and alert hooks alike)."""
    import random

    return min(MAX_BACKOFF_S, 2.0 ** max(0, failures - 1)) * random.uniform(0.8, 1.2)


def head(home: Home) -> tuple[int, str]:
    """The audit log's last (seq, hash); (0, GENESIS) before the first record. Here rather than in
    shipping.py, so that alerting.py and shipping.py, which call each other's work, need not import each
    other."""
    from botctl.audit.chain import GENESIS

    for row in audit_rows(home, "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"):
        return row
    return 0, GENESIS


def audit_rows(home: Home, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows of a query on the audit log (SQLite file or PostgreSQL schema; none before the first record)."""
    conn = store.open_audit_reader(home)
    if conn is None:
        return []
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_path(home: Home):  # noqa: ANN201 - Path
    return home.path / "shipping.db"


def connect(home: Home) -> sqlite3.Connection:
    home.ensure()
    conn = store.connect(db_path(home))
    store.migrate(conn, MIGRATIONS, what=str(db_path(home)))
    return conn


@dataclass
class Sink:
    name: str
    kind: str
    target: str
    options: dict[str, Any]
    delivered_seq: int
    delivered_hash: str | None
    delivered_at: str | None
    anchored_at: float | None
    failures: int
    last_error: str | None
    next_attempt: float

    def describe(self) -> str:
        if self.kind == "syslog":
            return f"syslog {self.target} ({self.options.get('protocol', 'udp')})"
        return f"{self.kind} {self.target}"


_SINK_COLUMNS = (
    "name, kind, target, options, delivered_seq, delivered_hash, delivered_at, anchored_at, failures, "
    "last_error, next_attempt"
)


def _sink(row: tuple) -> Sink:
    return Sink(row[0], row[1], row[2], json.loads(row[3]), *row[4:])


def list_sinks(conn: sqlite3.Connection) -> list[Sink]:
    return [_sink(r) for r in conn.execute(f"SELECT {_SINK_COLUMNS} FROM sinks ORDER BY created_at, name")]


def get_sink(conn: sqlite3.Connection, name: str) -> Sink:
    row = conn.execute(f"SELECT {_SINK_COLUMNS} FROM sinks WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no audit sink named {name!r}.", hint="List them with `botctl audit sink list`.")
    return _sink(row)


def add_sink(
    conn: sqlite3.Connection,
    name: str,
    kind: str,
    target: str,
    options: dict[str, Any],
    *,
    start_seq: int = 0,
    start_hash: str | None = None,
) -> Sink:
    try:
        conn.execute(
            "INSERT INTO sinks (name, kind, target, options, created_at, delivered_seq, delivered_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, kind, target, json.dumps(options, sort_keys=True), store.now_iso(), start_seq, start_hash),
        )
    except sqlite3.IntegrityError:
        raise BotctlError(
            f"an audit sink named {name!r} already exists.",
            hint="Pick another --name, or remove it first with `botctl audit sink remove NAME`.",
            code="already_exists",
        ) from None
    return get_sink(conn, name)


def remove_sink(conn: sqlite3.Connection, name: str) -> Sink:
    sink = get_sink(conn, name)
    conn.execute("DELETE FROM sinks WHERE name = ?", (name,))
    return sink


def next_name(conn: sqlite3.Connection, table: str, kind: str) -> str:
    n = 1
    while conn.execute(f"SELECT 1 FROM {table} WHERE name = ?", (f"{kind}-{n}",)).fetchone():
        n += 1
    return f"{kind}-{n}"


def delivered(
    conn: sqlite3.Connection, name: str, seq: int, hash_: str, *, anchored_at: float | None
) -> None:
    conn.execute(
        "UPDATE sinks SET delivered_seq = ?, delivered_hash = ?, delivered_at = ?, failures = 0, "
        "last_error = NULL, next_attempt = 0, anchored_at = coalesce(?, anchored_at) WHERE name = ?",
        (seq, hash_, store.now_iso(), anchored_at, name),
    )


def failed(conn: sqlite3.Connection, table: str, name: str, error: str, next_attempt: float) -> None:
    conn.execute(
        f"UPDATE {table} SET failures = failures + 1, last_error = ?, next_attempt = ? WHERE name = ?",
        (error[:500], next_attempt, name),
    )


def rewind(conn: sqlite3.Connection, name: str, seq: int, hash_: str | None) -> None:
    conn.execute("UPDATE sinks SET delivered_seq = ?, delivered_hash = ? WHERE name = ?", (seq, hash_, name))


# -- alerts ---------------------------------------------------------------------------------------------


@dataclass
class AlertHook:
    name: str
    url: str
    secret_env: str
    delivered_id: int
    delivered_at: str | None
    failures: int
    last_error: str | None
    next_attempt: float


_HOOK_COLUMNS = "name, url, secret_env, delivered_id, delivered_at, failures, last_error, next_attempt"


def list_hooks(conn: sqlite3.Connection) -> list[AlertHook]:
    return [
        AlertHook(*r)
        for r in conn.execute(f"SELECT {_HOOK_COLUMNS} FROM alert_hooks ORDER BY created_at, name")
    ]


def add_hook(conn: sqlite3.Connection, name: str, url: str, secret_env: str) -> AlertHook:
    # A new hook receives alerts raised from now on, not the history.
    last = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0]
    try:
        conn.execute(
            "INSERT INTO alert_hooks (name, url, secret_env, created_at, delivered_id) VALUES (?, ?, ?, ?, ?)",
            (name, url, secret_env, store.now_iso(), last),
        )
    except sqlite3.IntegrityError:
        raise BotctlError(
            f"an alert webhook named {name!r} already exists.",
            hint="Pick another --name, or remove it first with `botctl alert remove NAME`.",
            code="already_exists",
        ) from None
    return next(h for h in list_hooks(conn) if h.name == name)


def remove_hook(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("DELETE FROM alert_hooks WHERE name = ?", (name,)).rowcount == 0:
        raise NotFound(f"no alert webhook named {name!r}.", hint="List them with `botctl alert list`.")


def hook_delivered(conn: sqlite3.Connection, name: str, event_id: int) -> None:
    conn.execute(
        "UPDATE alert_hooks SET delivered_id = ?, delivered_at = ?, failures = 0, last_error = NULL, "
        "next_attempt = 0 WHERE name = ?",
        (event_id, store.now_iso(), name),
    )


def raise_alert(conn: sqlite3.Connection, type_: str, data: dict[str, Any]) -> int:
    cur = conn.execute(
        "INSERT INTO alert_events (type, created_at, data) VALUES (?, ?, ?)",
        (type_, store.now_iso(), json.dumps(data, sort_keys=True)),
    )
    return int(cur.lastrowid)


def events_after(conn: sqlite3.Connection, event_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, type, created_at, data FROM alert_events WHERE id > ? ORDER BY id LIMIT ?",
        (event_id, limit),
    ).fetchall()
    return [
        {"id": f"alt_{r[0]}", "n": r[0], "type": r[1], "created_at": r[2], "data": json.loads(r[3])}
        for r in rows
    ]


def last_event_id(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0]


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def check_env_name(name: str, flag: str = "--secret-env") -> str:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name or ""):
        raise UsageError(
            f"{flag} {name!r} is not an environment variable name.",
            hint=f"Give the NAME of a variable that holds the secret, e.g. {flag} BOTCTL_HOOK_SECRET "
            "(never the secret itself).",
        )
    from botctl.provision.envvars import RESERVED_ENV

    if name in RESERVED_ENV:  # the master key, a database password, the LLM key: the receiver would need it
        raise UsageError(
            f"{flag} {name} is botctl's own variable (or a local password), never a webhook's "
            "signing secret: whoever checks the signatures would need it.",
            hint=f"Make a secret for the webhook alone, e.g. {flag} BOTCTL_HOOK_SECRET.",
        )
    return name


EVENT_RETENTION_DAYS = 30


def prune_events(conn: sqlite3.Connection) -> int:
    """Drop alerts older than 30 days that every webhook has taken (doctor reads the last 24 h)."""
    from datetime import UTC, datetime, timedelta

    cutoff = (datetime.now(UTC) - timedelta(days=EVENT_RETENTION_DAYS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return conn.execute(
        "DELETE FROM alert_events WHERE created_at < ? AND id <= coalesce((SELECT min(delivered_id) FROM "
        "alert_hooks), (SELECT max(id) FROM alert_events))",
        (cutoff,),
    ).rowcount
