"""`botctl audit export`: time ranges (since inclusive, until exclusive), NDJSON lines that are the stored
records, CSV that a spreadsheet cannot be made to run, and clear refusals of bad options."""

from __future__ import annotations

import csv
import io
import json

import sqlite_utils

from botctl.session import Session


def _log(home, cli) -> list[dict]:
    assert cli("workspace", "create", "acme").code == 0
    with Session(home) as a:
        for i, ts in enumerate(
            ("2026-11-01T10:00:00.000000Z", "2026-11-02T10:00:00.000000Z", "2026-11-03T10:00:00.000000Z")
        ):
            a.audit(
                "test.event",
                workspace="acme",
                reason='=HYPERLINK("http://evil.example")' if i == 1 else None,
                detail={"n": i, "note": "-2+3" if i == 2 else "plain", "multi": "line1\nline2"},
                ts=ts,
            )
    return cli("audit", "-n", "100", "--json").ndjson()


def test_ndjson_range_is_since_inclusive_until_exclusive(home, cli):
    records = _log(home, cli)
    r = cli("audit", "export", "--since", "2026-11-02T10:00", "--until", "2026-11-03T10:00")
    assert r.code == 0 and "exported 1 record(s)" in r.err
    lines = r.out.split("\n")[:-1]
    assert len(lines) == 1
    exported = json.loads(lines[0])
    assert exported == next(x for x in records if x["ts"].startswith("2026-11-02"))
    stored = sqlite_utils.Database(home.audit_db)["records"].get(exported["seq"])["body"]
    assert lines[0] == '{"seq":%d,%s,"prev_hash":"%s","hash":"%s"}' % (
        exported["seq"],
        stored[1:-1],
        exported["prev_hash"],
        exported["hash"],
    )


def test_csv_cells_cannot_become_formulas(home, cli):
    _log(home, cli)
    r = cli("audit", "export", "--format", "csv", "--since", "2026-11-01", "--until", "2026-11-04")
    assert r.code == 0
    rows = list(csv.DictReader(io.StringIO(r.out)))
    assert [json.loads(row["detail"])["n"] for row in rows] == [0, 1, 2]
    assert rows[1]["reason"] == '\'=HYPERLINK("http://evil.example")'
    assert json.loads(rows[0]["detail"])["multi"] == "line1\nline2"  # quoted, not a new row
    assert rows[0]["v"] == "2" and rows[0]["actor_type"] == "operator" and len(rows[0]["hash"]) == 64


def test_bad_options_refused(home, cli):
    _log(home, cli)
    for args, words in (
        (("--format", "xml"), "not one of"),
        (("--since", "yesterday-ish"), "neither a duration"),
        (("--since", "2026-11-03", "--until", "2026-11-02"), "is not after"),
        (("--format", "csv", "--checkpoint"), "goes with --format ndjson"),
    ):
        r = cli("audit", "export", *args)
        assert r.code == 2 and words in r.err and r.out == "", (args, r.err)
