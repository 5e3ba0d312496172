"""`botctl apply`: declarative provisioning from a TOML file, against the real sandbox over loopback."""

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

import botctl.cli.lazy

DATA = Path(__file__).parent / "data" / "apply"


@pytest.fixture(autouse=True)
def apply_registered(monkeypatch):
    monkeypatch.setitem(
        botctl.cli.lazy.COMMANDS,
        "apply",
        ("botctl.cli.apply_cmd", "Provision workspaces from a TOML file.", "apply"),
    )


@pytest.fixture
def cfg(tmp_path):
    """A copy of tests/data/apply (the sample file, a PEM key, two help pages) that tests may edit."""
    d = tmp_path / "cfg"
    shutil.copytree(DATA, d)
    return d


@pytest.fixture
def env(monkeypatch, sandbox):
    creds = sandbox.credentials()
    monkeypatch.setenv("STRIPE_KEY", creds["stripe"]["api_key"])
    monkeypatch.setenv("ZENDESK_TOKEN", creds["zendesk"]["access_token"])
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "hubspot-client-secret-value")
    monkeypatch.setenv("BOTCTL_SANDBOX", sandbox.url)
    return creds


def apply(cli, path, *args):
    return cli("apply", "-f", str(path), *args)


def audit(cli):
    return cli("audit", "--json", "-n", "1000").ndjson()


def write(cfg, text, name="p.toml"):
    p = cfg / name
    p.write_text(text)
    return p


def actions(result_json):
    return {(s["kind"], s["name"]): s["action"] for s in result_json["plan"]}


def state(home):
    from botctl import connections, identity, knowledge, workspaces
    from botctl.oauth import apps as oauth_apps
    from botctl.session import Session

    with Session(home, create=False) as a:
        conn = a.vault.conn
        out = {}
        for ws in workspaces.list_all(conn):
            out[ws.name] = {
                "plan": ws.plan,
                "origins": list(ws.origins),
                "display_name": ws.display_name,
                "identity": identity.settings(conn, ws),
                "keys": sorted((k.kid, k.alg, k.kind) for k in identity.list_keys(conn, ws)),
                "docs": sorted(d.name for d in knowledge.list_docs(conn, ws)),
                "connections": {c.connector: c.status for c in connections.list_all(conn, ws)},
                "oauth_apps": sorted(
                    x.connector for x in oauth_apps.list_all(conn) if x.workspace == ws.name
                ),
            }
        return out


SMALL = """
[workspaces.shop]
plan = "free"
origins = ["https://shop.example"]
"""


def test_create_then_second_apply_is_nothing_to_do(home, cli, cfg, env):
    r = apply(cli, cfg / "acme.toml", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["changed"] is True
    assert {s["action"] for s in out["plan"]} == {"create"}
    s = state(home)
    acme = s["acme"]
    assert acme["plan"] == "pro" and acme["origins"] == ["https://shop.acme.test"]
    assert acme["display_name"] == "Acme Store"
    assert acme["identity"] == ("https://shop.acme.test", 3600)
    assert ("site-2026", "ES256", "public_key") in acme["keys"]
    assert [k for k in acme["keys"] if k[2] == "secret"]
    assert acme["docs"] == ["returns.md", "shipping.md"]
    assert acme["connections"] == {"stripe": "active", "zendesk": "active"}
    assert s["globex"]["oauth_apps"] == ["hubspot"]
    records = audit(cli)
    assert [x["event"] for x in records].count("provision.applied") == 1
    # the secrets from the environment never reach the output or the audit log
    blob = r.out + r.err + json.dumps(records)
    assert env["stripe"]["api_key"] not in blob and "hubspot-client-secret-value" not in blob

    r2 = apply(cli, cfg / "acme.toml", "--json")
    assert r2.code == 0, r2.err
    out2 = r2.json()
    assert out2["changed"] is False and "secrets" not in out2
    assert {s["action"] for s in out2["plan"]} == {"unchanged"}
    assert actions(out2)[("knowledge", "acme/returns.md")] == "unchanged"
    assert len(audit(cli)) == len(records)  # no new audit records at all
    r3 = apply(cli, cfg / "acme.toml")
    assert r3.code == 0 and "nothing to do" in r3.err
    assert len(audit(cli)) == len(records)


def test_dry_run_changes_nothing(home, cli, cfg, env):
    r = apply(cli, cfg / "acme.toml", "--dry-run", "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert out["dry_run"] is True and out["changed"] is False
    assert actions(out)[("workspace", "acme")] == "create"
    assert not home.vault_db.exists()  # not even a vault was created

    assert apply(cli, SMALL_PATH := write(cfg, SMALL)).code == 0
    before = audit(cli)
    SMALL_PATH.write_text(SMALL.replace('"free"', '"business"'))
    r = apply(cli, SMALL_PATH, "--dry-run")
    assert r.code == 0 and "would be made" in r.err and "update\tworkspace\tshop" in r.out
    assert state(home)["shop"]["plan"] == "free"
    assert len(audit(cli)) == len(before)


def test_change_plan_origins_and_knowledge_is_an_update(home, cli, cfg):
    p = write(cfg, SMALL + '[workspaces.shop.knowledge]\npaths = ["help/shipping.md"]\n')
    assert apply(cli, p).code == 0
    p.write_text(
        p.read_text()
        .replace('"free"', '"pro"')
        .replace('"https://shop.example"', '"https://shop.example", "HTTPS://Other.Example:443"')
    )
    (cfg / "help" / "shipping.md").write_text("# Shipping\n\nEverything ships the same day, for free.\n")
    r = apply(cli, p, "--json")
    assert r.code == 0, r.err
    acts = actions(r.json())
    assert acts[("workspace", "shop")] == "update" and acts[("knowledge", "shop/shipping.md")] == "update"
    s = state(home)["shop"]
    assert s["plan"] == "pro" and s["origins"] == ["https://shop.example", "https://other.example"]
    events = [x["event"] for x in audit(cli)]
    assert "workspace.updated" in events and events.count("knowledge.added") == 2
    assert apply(cli, p, "--json").json()["changed"] is False  # normalised origins compare equal


def test_prune_only_with_the_flag(home, cli, cfg, env):
    assert apply(cli, cfg / "acme.toml").code == 0
    text = (cfg / "acme.toml").read_text()
    trimmed = text.split("[workspaces.globex]")[0].replace(
        "[workspaces.acme.connections.zendesk]   # an OAuth connector: only a vendor-issued token via env here\n"
        'subdomain = "acme"\naccess_token_env = "ZENDESK_TOKEN"\n',
        "",
    )
    p = write(cfg, trimmed, "trimmed.toml")
    r = apply(cli, p, "--json")
    assert r.code == 0, r.err
    assert r.json()["changed"] is False and "delete" not in {s["action"] for s in r.json()["plan"]}
    assert set(state(home)) == {"acme", "globex"}
    assert state(home)["acme"]["connections"] == {"stripe": "active", "zendesk": "active"}

    r = apply(cli, p, "--prune", "--json")  # deleting needs --yes (tests/test_hostile_apply.py has the rest)
    assert r.code == 2 and r.json()["error"]["code"] == "confirmation_required"
    assert set(state(home)) == {"acme", "globex"}

    r = apply(cli, p, "--prune", "--yes", "--json")
    assert r.code == 0, r.err
    acts = actions(r.json())
    assert acts[("workspace", "globex")] == "delete" and acts[("connection", "acme/zendesk")] == "delete"
    s = state(home)
    assert set(s) == {"acme"} and s["acme"]["connections"] == {"stripe": "active"}
    events = [x["event"] for x in audit(cli)]
    assert "workspace.deleted" in events and "connection.deleted" in events
    assert (
        apply(cli, p, "--prune", "--json").json()["changed"] is False
    )  # nothing left to delete: no --yes needed


def test_literal_secret_refused_with_line(home, cli, cfg):
    p = write(cfg, SMALL + '\n[workspaces.shop.connections.stripe]\napi_key = "rk_test_literal_value_123"\n')
    r = apply(cli, p, "--json")
    assert r.code == 2
    assert f"{p}:7: workspaces.shop.connections.stripe.api_key: a literal secret" in r.err
    assert "rk_test_literal_value_123" not in r.out + r.err
    assert r.json()["error"]["code"] == "invalid_provision_file"
    assert not home.vault_db.exists()


@pytest.mark.parametrize(
    "extra, line, key, needle",
    [
        ('colour = "red"\n', 5, "workspaces.shop.colour", "unknown key"),
        (
            '[workspaces.shop.identity]\nmax_lifetime = "3d"\n',
            6,
            "workspaces.shop.identity.max_lifetime",
            "between",
        ),
        (
            '[workspaces.shop.knowledge]\npaths = ["nope/"]\n',
            6,
            "workspaces.shop.knowledge.paths",
            "no such file",
        ),
        (
            '[[workspaces.shop.identity.public_keys]]\nkid = "k1"\nalg = "ES256"\npath = "keys/missing.pem"\n',
            8,
            "workspaces.shop.identity.public_keys[0].path",
            "cannot read",
        ),
    ],
)
def test_invalid_file_exit_2_and_nothing_changed(home, cli, cfg, extra, line, key, needle):
    assert apply(cli, write(cfg, SMALL)).code == 0
    before = (state(home), len(audit(cli)))
    text = SMALL.replace('"free"', '"pro"') + extra  # a valid change in the same file must not be applied
    p = write(cfg, text, "bad.toml")
    r = apply(cli, p)
    assert r.code == 2, r.err
    assert f"{p}:{line}: {key}:" in r.err and needle in r.err
    assert (state(home), len(audit(cli))) == before


def test_bad_plan_and_name(home, cli, cfg):
    p = write(cfg, '[workspaces.shop]\nplan = "gold"\n\n[workspaces.Bad_Name]\nplan = "free"\n')
    r = apply(cli, p)
    assert r.code == 2
    assert f"{p}:2: workspaces.shop.plan: unknown plan 'gold'" in r.err
    assert f"{p}:4: workspaces.Bad_Name: invalid workspace name" in r.err
    assert not home.vault_db.exists()


def test_missing_env_var_exit_2(home, cli, cfg, env, monkeypatch):
    monkeypatch.delenv("ZENDESK_TOKEN")
    r = apply(cli, cfg / "acme.toml")
    assert r.code == 2
    assert "workspaces.acme.connections.zendesk.access_token_env: environment variable ZENDESK_TOKEN" in r.err
    assert f"{cfg / 'acme.toml'}:27:" in r.err
    assert not home.vault_db.exists()


def test_rejected_key_is_a_partial_failure(home, cli, cfg, env, monkeypatch):
    monkeypatch.setenv("STRIPE_KEY", "rk_test_" + "0" * 40)
    r = apply(cli, cfg / "acme.toml", "--json")
    assert r.code == 7, r.err
    out = r.json()
    assert out["failed"] == ["connection acme/stripe"] and out["changed"] is True
    stripe = next(s for s in out["plan"] if s["name"] == "acme/stripe")
    assert stripe["status"] == "failed" and "rejected" in stripe["error"]
    s = state(home)
    assert s["acme"]["connections"] == {"zendesk": "active"} and set(s) == {"acme", "globex"}
    records = audit(cli)
    summary = [x for x in records if x["event"] == "provision.applied"]
    assert len(summary) == 1 and summary[0]["outcome"] == "error"
    assert any(x["event"] == "connection.failed" for x in records)

    monkeypatch.setenv("STRIPE_KEY", env["stripe"]["api_key"])
    r = apply(cli, cfg / "acme.toml", "--json")
    assert r.code == 0, r.err
    assert [(s["name"], s["action"]) for s in r.json()["plan"] if s["action"] != "unchanged"] == [
        ("acme/stripe", "create")
    ]


def test_changed_env_secret_reconnects(home, cli, cfg, env, monkeypatch, sandbox):
    p = write(cfg, SMALL + '[workspaces.shop.connections.stripe]\napi_key_env = "STRIPE_KEY"\n')
    assert apply(cli, p).code == 0
    assert apply(cli, p, "--json").json()["changed"] is False
    r = apply(cli, p, "--reconnect", "--json")
    assert actions(r.json())[("connection", "shop/stripe")] == "update"
    monkeypatch.setenv("STRIPE_KEY", "rk_test_" + "1" * 40)
    r = apply(cli, p, "--json")
    assert r.code == 7  # the new key is checked with the vendor before it replaces the stored one
    assert state(home)["shop"]["connections"] == {"stripe": "active"}


def test_hs256_secret_written_once(home, cli, cfg, env):
    out_file = cfg / "secrets.json"
    r = apply(cli, cfg / "acme.toml", "--secrets-out", str(out_file), "--json")
    assert r.code == 0, r.err
    assert "secrets" not in r.json()
    assert os.stat(out_file).st_mode & 0o777 == 0o600
    saved = json.loads(out_file.read_text())
    assert saved["acme"]["alg"] == "HS256" and len(saved["acme"]["hs256_secret"]) >= 40
    assert saved["acme"]["hs256_secret"] not in r.out + r.err
    kid = saved["acme"]["kid"]
    assert (kid, "HS256", "secret") in state(home)["acme"]["keys"]
    content = out_file.read_text()
    r = apply(cli, cfg / "acme.toml", "--secrets-out", str(out_file), "--json")
    assert r.code == 0 and r.json()["changed"] is False
    assert out_file.read_text() == content
    assert [k for k in state(home)["acme"]["keys"] if k[2] == "secret"] == [(kid, "HS256", "secret")]


def test_hs256_secret_printed_once_without_secrets_out(home, cli, cfg):
    p = write(cfg, SMALL + "[workspaces.shop.identity]\nhs256 = true\n")
    r = apply(cli, p, "--json")
    secret = r.json()["secrets"]["shop"]["hs256_secret"]
    r = apply(cli, p, "--json")
    assert "secrets" not in r.json() and secret not in r.out


def test_ci_actor(home, cli, cfg, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert apply(cli, write(cfg, SMALL)).code == 0
    records = [x for x in audit(cli) if x["event"] in ("workspace.created", "provision.applied")]
    assert len(records) == 2 and all(x["actor"]["type"] == "ci" for x in records)


def test_apply_does_not_store_env_secret_in_plain(home, cli, cfg, env):
    assert apply(cli, cfg / "acme.toml").code == 0
    raw = home.vault_db.read_bytes()
    assert env["stripe"]["api_key"].encode() not in raw
    assert sqlite3.connect(home.vault_db).execute("SELECT count(*) FROM secrets").fetchone()[0] >= 3


# -- errors in the file's words: a TOML user is never told about a command-line flag ----------------------

FLAG = re.compile(r"(?<![\w-])--[a-z]")


@pytest.mark.parametrize(
    "extra, key, needle",
    [
        (
            '[workspaces.shop.oauth_apps.hubspot]\nclient_id = "abc"\ntoken_auth = "magic"\n',
            "workspaces.shop.oauth_apps.hubspot.token_auth",
            "token_auth must be one of",
        ),
        (
            '[workspaces.shop.connections.stripe]\napi_key_env = "STRIPE_KEY"\nsandbox = "nowhere"\n',
            "workspaces.shop.connections.stripe.sandbox",
            "sandbox 'nowhere' is not a URL",
        ),
        (
            '[workspaces.shop.connections.zendesk]\naccess_token_env = "ZENDESK_TOKEN"\n',
            "workspaces.shop.connections.zendesk.subdomain",
            "needs subdomain",
        ),
        (
            '[workspaces.shop.identity]\nissuer = " https://shop.example"\n',
            "workspaces.shop.identity.issuer",
            "invalid issuer",
        ),
    ],
)
def test_library_errors_name_the_toml_key_not_a_flag(home, cli, cfg, extra, key, needle):
    p = write(cfg, SMALL + extra)
    r = apply(cli, p)
    assert r.code == 2, r.err
    assert f"{key}:" in r.err and needle in r.err and f"{p}:" in r.err
    assert not FLAG.search(r.err), r.err
    assert not home.vault_db.exists()


def test_a_vendor_without_that_account_points_at_the_key(home, cli, cfg, env, monkeypatch):
    from botctl import connections
    from botctl.connectors.base import ActionError

    async def no_such_account(connector, config, credential):
        raise ActionError("not_found", "no account here", upstream_status=404)

    monkeypatch.setattr(connections, "validate", no_such_account)
    text = (
        SMALL
        + '[workspaces.shop.connections.zendesk]\nsubdomain = "acme"\naccess_token_env = "ZENDESK_TOKEN"\n'
    )
    p = write(cfg, text)
    r = apply(cli, p, "--json")
    assert r.code == 7, r.err
    step = next(s for s in r.json()["plan"] if s["name"] == "shop/zendesk")
    assert step["status"] == "failed" and "no account" in step["error"]
    assert f"check subdomain at {p}:5: workspaces.shop.connections.zendesk" in step["error"]
    assert not FLAG.search(r.out + r.err)
    failed = [x for x in audit(cli) if x["event"] == "connection.failed"]  # audited by the library call
    assert len(failed) == 1 and failed[0]["reason"] == "wrong_account"
