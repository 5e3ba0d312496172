"""Reading the chain on PostgreSQL: `audit -f` woken by NOTIFY, and the rows `verify` walks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botctl.postgres.connection import NOTIFY_CHANNEL, PgConnection, connect

WAIT_S = 5.0  # the longest sleep between checks, should a notification ever be lost (a reconnect)
BATCH = 1000


def follow(
    url: str,
    after: Callable[[int, int], list[dict[str, Any]]],
    matches: Callable[[dict[str, Any]], bool],
    *,
    start_after: int,
) -> Iterator[dict[str, Any]]:
    """Every record after `start_after` that `matches`, as it commits (`after(seq, limit)` reads them).

    A dedicated connection LISTENs first, then reads: a record committed between the two is read, one
    committed after is announced (every append NOTIFYs inside its transaction, delivered at its commit).
    """
    listener = connect(url, schema="audit")
    try:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        last = start_after
        while True:
            batch = after(last, BATCH)
            if batch:
                last = batch[-1]["seq"]
                for rec in batch:
                    if matches(rec):
                        yield rec
                continue
            for _ in listener.raw.notifies(timeout=WAIT_S, stop_after=1):
                pass
    finally:
        listener.close()


def chain_rows(conn: PgConnection) -> Iterator[tuple[int, bytes, str, str]]:
    """(seq, body as UTF-8 bytes, prev_hash, hash) in seq order, streamed by a server-side cursor."""
    with conn.raw.transaction(), conn.raw.cursor(name="botctl_verify") as cur:
        cur.itersize = 5000
        cur.execute("SELECT seq, convert_to(body, 'UTF8'), prev_hash, hash FROM records ORDER BY seq")
        for seq, body, prev_hash, hash_ in cur:
            yield seq, bytes(body), prev_hash, hash_
