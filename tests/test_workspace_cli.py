import sqlite3

import pytest


def _state(home):
    """Everything a failed command must leave untouched."""
    if not home.vault_db.exists():
        return None
    c = sqlite3.connect(home.vault_db)
    try:
        return (
            c.execute("SELECT * FROM workspaces ORDER BY name").fetchall(),
            c.execute("SELECT * FROM workspace_keys ORDER BY workspace_id, version").fetchall(),
            c.execute("SELECT * FROM secrets").fetchall(),
            sqlite3.connect(home.audit_db).execute("SELECT count(*) FROM records").fetchone()[0]
            if home.audit_db.exists()
            else 0,
        )
    finally:
        c.close()


def test_crud_with_json(home, cli):
    r = cli(
        "workspace",
        "create",
        "acme",
        "--plan",
        "pro",
        "--origin",
        "https://Shop.Example.com:443",
        "--origin",
        "http://localhost:3000",
        "--display-name",
        "Acme Support",
        "--json",
    )
    assert r.code == 0, r.err
    ws = r.json()
    assert ws["name"] == "acme" and ws["plan"] == "pro" and ws["id"].startswith("ws_")
    assert ws["origins"] == ["https://shop.example.com", "http://localhost:3000"]
    assert ws["display_name"] == "Acme Support"
    assert cli("workspace", "create", "beta").code == 0
    listed = cli("workspace", "list", "--json").json()
    assert [w["name"] for w in listed] == ["acme", "beta"]
    assert cli("workspace", "show", "acme", "--json").json() == {**ws, "updated_at": ws["updated_at"]}
    r = cli("workspace", "set-plan", "beta", "business", "--json")
    assert r.code == 0 and r.json()["plan"] == "business"
    r = cli("workspace", "set-origins", "beta", "https://b.example", "--json")
    assert r.json()["origins"] == ["https://b.example"]
    r = cli("workspace", "set-origins", "beta", "--json")
    assert r.json()["origins"] == []
    r = cli("workspace", "rotate-key", "acme", "--json")
    assert r.json() == {"name": "acme", "key_version": 2}
    r = cli("workspace", "delete", "beta", "--yes", "--json")
    assert r.json() == {"name": "beta", "deleted": True, "shredding": "complete"}
    assert [w["name"] for w in cli("workspace", "list", "--json").json()] == ["acme"]
    events = [rec["event"] for rec in cli("audit", "-n", "100", "--json").ndjson()]
    assert events == [
        "vault.initialized",
        "workspace.created",
        "workspace.created",
        "workspace.plan_changed",
        "workspace.origins_changed",
        "workspace.origins_changed",
        "workspace.key_rotated",
        "workspace.deleted",
    ]
    assert cli("audit", "verify").code == 0


def test_human_output_is_plain_when_piped(home, cli):
    cli("workspace", "create", "acme", "--plan", "pro")
    r = cli("workspace", "list")
    assert r.out.split("\t")[:2] == ["acme", "pro"]
    r = cli("workspace", "show", "acme")
    assert "plan" in r.out and "pro" in r.out


def test_list_on_fresh_machine_creates_nothing(home, cli):
    r = cli(
        "workspace", "list", "--json"
    )  # a mistyped --home must not read as "no workspaces yet" (issue #20)
    assert r.code == 1 and r.json()["error"]["code"] == "not_initialised" and "botctl init" in r.err
    assert not home.path.exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("workspace", "create", "acme"), 4, "already exists"),
        (("workspace", "create", "A"), 2, "invalid workspace name"),
        (("workspace", "create", "x" * 64), 2, "invalid workspace name"),
        (("workspace", "create", "acme-"), 2, "invalid workspace name"),
        (("workspace", "create", "ac--me"), 2, "invalid workspace name"),
        (("workspace", "create", "Acme"), 2, "invalid workspace name"),
        (("workspace", "create", "new", "--plan", "gold"), 2, "unknown plan"),
        (("workspace", "create", "new", "--origin", "shop.example.com"), 2, "invalid origin"),
        (("workspace", "create", "new", "--origin", "https://shop.example.com/path"), 2, "invalid origin"),
        (("workspace", "create", "new", "--origin", "ftp://shop.example.com"), 2, "invalid origin"),
        (("workspace", "create", "new", "--origin", "https://*.example.com"), 2, "invalid origin"),
        (("workspace", "create", "new", "--origin", "https://user:pw@example.com"), 2, "invalid origin"),
        (("workspace", "create", "new", "--origin", "https://example.com:99999"), 2, "invalid origin"),
        (("workspace", "show", "nope"), 3, "no workspace named 'nope'"),
        (("workspace", "set-plan", "nope", "pro"), 3, "no workspace named"),
        (("workspace", "set-plan", "acme", "gold"), 2, "unknown plan"),
        (("workspace", "set-origins", "acme", "https://ok.example", "bad"), 2, "invalid origin"),
        (("workspace", "set-origins", "nope", "https://ok.example"), 3, "no workspace named"),
        (("workspace", "rotate-key", "nope"), 3, "no workspace named"),
        (("workspace", "delete", "acme"), 2, "--yes"),
        (("workspace", "delete", "nope", "--yes"), 3, "no workspace named"),
    ],
)
def test_bad_input_changes_nothing(home, cli, args, code, message):
    assert cli("workspace", "create", "acme", "--origin", "https://a.example").code == 0
    before = _state(home)
    r = cli(*args)
    assert r.code == code, (r.out, r.err)
    assert message in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) <= 2
    assert _state(home) == before


def test_json_errors_on_stdout(home, cli):
    cli("workspace", "create", "acme")
    r = cli("workspace", "create", "acme", "--json")
    assert r.code == 4
    assert r.json()["error"]["code"] == "conflict"


def test_name_length_bounds(home, cli):
    assert cli("workspace", "create", "ab").code == 0
    assert cli("workspace", "create", "a" * 63).code == 0


def test_version_and_help(cli):
    assert cli("--version").out.startswith("botctl ")
    r = cli("--help")
    assert r.code == 0 and "workspace" in r.out


def test_usage_error_exit_2(cli):
    r = cli("workspace", "create")
    assert r.code == 2 and "Missing argument" in r.err


def test_real_process_no_traceback(home, botctl_proc):
    r = botctl_proc("workspace", "show", "nope")
    assert r.code == 3
    assert r.err.strip() == "error: no workspace named 'nope'.\nhint: See `botctl workspace list`."


def test_quiet_silences_status_not_data_or_errors(home, cli):
    assert cli("init").code == 0  # the one-time plain-file key warning is a warning, not status: it stays
    r = cli("--quiet", "workspace", "create", "acme")
    assert r.code == 0 and r.err == ""
    assert cli("-q", "workspace", "list", "--json").json()[0]["name"] == "acme"
    r = cli("-q", "workspace", "create", "acme")
    assert r.code == 4 and "already exists" in r.err
