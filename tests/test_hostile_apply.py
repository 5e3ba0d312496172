"""Hostile provisioning: what a pull request could put in `botctl.toml` for CI to apply.

Each test is an attack a review reproduced on a live home (README, "Provisioning from a file (CI)"):
a file that names botctl's own variables or a CI token as a connection's secret and points the
connection at its own host; knowledge paths that are symlinks to credentials or leave the file's
folder; `--prune` deleting tenants without asking; a secret pasted where a variable name belongs.
"""

import base64
import json
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "apply"
MASTER = base64.b64encode(bytes(range(32))).decode()
CI_TOKEN = "ci-deploy-token-7f3a9c1e5b2d4068a1f0"
CREDS = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

WS = """
[workspaces.acme]
plan = "pro"
origins = ["https://shop.acme.test"]
"""


@pytest.fixture
def cfg(tmp_path):
    d = tmp_path / "repo"
    shutil.copytree(DATA, d)
    return d


@pytest.fixture
def recorder():
    """An attacker's HTTP server on loopback: records every request (with its headers), answers 401."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _any(self):
            seen.append({"path": self.path, "headers": dict(self.headers)})
            body = b'{"message": "no"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.seen = seen
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.host = f"127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("BOTCTL_MASTER_KEY", MASTER)
    monkeypatch.setenv("CI_DEPLOY_TOKEN", CI_TOKEN)


def write(cfg, text, name="botctl.toml"):
    p = cfg / name
    p.write_text(text)
    return p


def line_of(text, needle):
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def state(home):
    from botctl import connections, knowledge, workspaces
    from botctl.oauth import apps as oauth_apps
    from botctl.session import Session

    if not home.vault_db.exists():
        return None
    with Session(home, create=False) as a:
        conn = a.vault.conn
        return {
            ws.name: {
                "docs": sorted(d.name for d in knowledge.list_docs(conn, ws)),
                "connections": {c.connector: c.status for c in connections.list_all(conn, ws)},
            }
            | {"apps": sorted(x.connector for x in oauth_apps.list_all(conn) if x.workspace == ws.name)}
            for ws in workspaces.list_all(conn)
        } | {"_global_apps": sorted(x.connector for x in oauth_apps.list_all(conn) if x.workspace is None)}


def no_leak(r, *values):
    blob = r.out + r.err
    for v in values:
        assert v not in blob


# -- 1. secrets sent to a host the file chose ------------------------------------------------------------


@pytest.mark.parametrize(
    "connector, table",
    [
        (
            "woocommerce",
            'site = "{url}"\napi_key_env = "BOTCTL_MASTER_KEY"\napi_secret_env = "CI_DEPLOY_TOKEN"\n',
        ),
        ("calcom", 'base_url = "{url}"\napi_key_env = "BOTCTL_MASTER_KEY"\n'),
    ],
)
def test_master_key_never_leaves_for_a_host_the_file_chose(home, cli, cfg, ci, recorder, connector, table):
    text = WS + f"\n[workspaces.acme.connections.{connector}]\n" + table.format(url=recorder.url)
    p = write(cfg, text)
    r = cli("apply", "-f", str(p))
    assert r.code == 2, r.err
    assert recorder.seen == []
    no_leak(r, MASTER, CI_TOKEN)
    assert f"{p}:{line_of(text, 'BOTCTL_MASTER_KEY')}:" in r.err and "BOTCTL_MASTER_KEY" in r.err
    assert "botctl's own" in r.err
    assert recorder.host in r.err and f"--allow-host {recorder.host}" in r.err
    assert "Traceback" not in r.err
    assert state(home) is None


def test_a_ci_token_goes_to_a_file_chosen_host_only_with_allow_host(home, cli, cfg, ci, recorder):
    text = (
        WS
        + f'\n[workspaces.acme.connections.calcom]\nbase_url = "{recorder.url}"\napi_key_env = "CI_DEPLOY_TOKEN"\n'
    )
    p = write(cfg, text)
    r = cli("apply", "-f", str(p), "--json")
    assert r.code == 2
    err = r.json()["error"]
    assert err["code"] == "host_not_allowed"
    assert f"{p}:{line_of(text, 'base_url')}: workspaces.acme.connections.calcom.base_url:" in err["message"]
    assert f"--allow-host {recorder.host}" in err["message"]
    assert recorder.seen == [] and state(home) is None
    no_leak(r, CI_TOKEN)
    # the operator names the host on the command line: now (and only now) the key goes there
    r = cli("apply", "-f", str(p), "--allow-host", recorder.host)
    assert r.code == 7, r.err  # the "vendor" refused it
    assert len(recorder.seen) == 1 and CI_TOKEN in json.dumps(recorder.seen[0]["headers"])
    no_leak(r, CI_TOKEN)


def test_refused_before_any_secret_is_read(home, cli, cfg, ci, recorder):
    # the variable is not set: a refusal that had read it would say "is empty or not set"
    text = (
        WS
        + f'\n[workspaces.acme.connections.calcom]\nbase_url = "{recorder.url}"\napi_key_env = "NOT_SET_HERE"\n'
    )
    r = cli("apply", "-f", str(write(cfg, text)))
    assert r.code == 2 and "--allow-host" in r.err
    assert "NOT_SET_HERE" not in r.err and "not set" not in r.err


@pytest.mark.parametrize(
    "var",
    [
        "BOTCTL_MASTER_KEY",
        "BOTCTL_LLM_API_KEY",
        "BOTCTL_HOME",
        "BOTCTL_SOMETHING_NEW",
        "CREDENTIALS_DIRECTORY",
        "PGPASSWORD",
        "PGPASSFILE",
    ],
)
def test_botctls_own_variables_are_never_a_connection_secret(home, cli, cfg, sandbox, monkeypatch, var):
    monkeypatch.setenv("BOTCTL_SANDBOX", sandbox.url)
    monkeypatch.setenv(var, os.environ.get(var) or "rk_test_" + "5" * 40)
    sandbox.reset_stats()
    text = WS + f'\n[workspaces.acme.connections.stripe]\napi_key_env = "{var}"\n'
    p = write(cfg, text)
    r = cli("apply", "-f", str(p), "--json")
    assert r.code == 2, r.out + r.err
    assert r.json()["error"]["code"] == "invalid_provision_file"
    assert (
        f"{p}:{line_of(text, var)}: workspaces.acme.connections.stripe.api_key_env:"
        in r.json()["error"]["message"]
    )
    assert sandbox.stats()["total"] == 0  # nothing was sent to the vendor
    assert state(home) is None


def test_reserved_names_also_for_oauth_client_secrets(home, cli, cfg, ci):
    text = (
        WS
        + '\n[workspaces.acme.oauth_apps.hubspot]\nclient_id = "x"\nclient_secret_env = "BOTCTL_MASTER_KEY"\n'
    )
    r = cli("apply", "-f", str(write(cfg, text)))
    assert r.code == 2 and "botctl's own" in r.err
    no_leak(r, MASTER)


def test_every_variable_of_the_readme_configuration_table_is_reserved():
    from botctl import provision

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", section))
    assert {"BOTCTL_HOME", "BOTCTL_MASTER_KEY", "CREDENTIALS_DIRECTORY"} <= names
    for name in names | {"PGPASSWORD", "PGPASSFILE", "CI", "BOTCTL_FAILPOINTS"}:
        assert provision.reserved_env(name), name
    assert not provision.reserved_env("STRIPE_KEY")


def test_sandbox_in_the_file_is_a_host_like_any_other(home, cli, cfg, sandbox, monkeypatch):
    monkeypatch.setenv("STRIPE_KEY", sandbox.credentials()["stripe"]["api_key"])
    text = (
        WS
        + f'\n[workspaces.acme.connections.stripe]\nsandbox = "{sandbox.url}"\napi_key_env = "STRIPE_KEY"\n'
    )
    p = write(cfg, text)
    r = cli("apply", "-f", str(p))
    assert r.code == 2 and "--allow-host 127.0.0.1" in r.err and state(home) is None
    r = cli("apply", "-f", str(p), "--allow-host", "127.0.0.1")
    assert r.code == 0, r.err
    assert state(home)["acme"]["connections"] == {"stripe": "active"}


def test_loopback_sandbox_from_the_environment_needs_no_flag_but_another_host_does(
    home, cli, cfg, sandbox, monkeypatch
):
    monkeypatch.setenv("STRIPE_KEY", sandbox.credentials()["stripe"]["api_key"])
    p = write(cfg, WS + '\n[workspaces.acme.connections.stripe]\napi_key_env = "STRIPE_KEY"\n')
    monkeypatch.setenv("BOTCTL_SANDBOX", "https://sandbox.attacker.test")
    r = cli("apply", "-f", str(p))
    assert r.code == 2 and "--allow-host sandbox.attacker.test" in r.err and state(home) is None
    monkeypatch.setenv("BOTCTL_SANDBOX", sandbox.url)
    r = cli("apply", "-f", str(p))
    assert r.code == 0, r.err


def test_self_hosted_woocommerce_with_allow_host(home, cli, cfg, sandbox, monkeypatch):
    creds = sandbox.credentials()["woocommerce"]
    monkeypatch.setenv("WOO_KEY", creds["consumer_key"])
    monkeypatch.setenv("WOO_SECRET", creds["consumer_secret"])
    text = WS + (
        f'\n[workspaces.acme.connections.woocommerce]\nsite = "{sandbox.url}/woocommerce/{creds["store"]}"\n'
        'api_key_env = "WOO_KEY"\napi_secret_env = "WOO_SECRET"\n'
    )
    p = write(cfg, text)
    dry = cli("apply", "-f", str(p), "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["hosts"] == [
        {
            "host": "127.0.0.1",
            "port": int(sandbox.url.rsplit(":", 1)[1]),
            "where": f"{p}:{line_of(text, 'site =')}: workspaces.acme.connections.woocommerce.site",
            "allowed": False,
        }
    ]
    text_dry = cli("apply", "-f", str(p), "--dry-run")
    assert "--allow-host 127.0.0.1" in text_dry.err
    assert cli("apply", "-f", str(p)).code == 2
    r = cli("apply", "-f", str(p), "--allow-host", "127.0.0.1")
    assert r.code == 0, r.err
    assert state(home)["acme"]["connections"] == {"woocommerce": "active"}
    no_leak(r, creds["consumer_key"], creds["consumer_secret"])


@pytest.mark.parametrize("where", ["global", "workspace"])
def test_oauth_endpoint_override_needs_allow_host(home, cli, cfg, ci, where):
    table = "[oauth_apps.hubspot]" if where == "global" else "[workspaces.acme.oauth_apps.hubspot]"
    text = (
        WS + f'\n{table}\nclient_id = "x"\nclient_secret_env = "CI_DEPLOY_TOKEN"\n'
        'token_url = "https://auth.attacker.test/token"\n'
    )
    p = write(cfg, text)
    r = cli("apply", "-f", str(p))
    assert r.code == 2, r.err
    assert f"{p}:{line_of(text, 'token_url')}:" in r.err and "--allow-host auth.attacker.test" in r.err
    assert state(home) is None
    r = cli("apply", "-f", str(p), "--allow-host", "auth.attacker.test")
    assert r.code == 0, r.err
    s = state(home)
    assert (s["_global_apps"] if where == "global" else s["acme"]["apps"]) == ["hubspot"]
    no_leak(r, CI_TOKEN)


def test_oauth_override_on_the_vendors_own_host_needs_no_flag(home, cli, cfg, ci):
    text = (
        WS
        + '\n[workspaces.acme.oauth_apps.hubspot]\nclient_id = "x"\nclient_secret_env = "CI_DEPLOY_TOKEN"\n'
        'token_url = "https://api.hubapi.com/oauth/v3/token"\n'
        '\n[workspaces.acme.oauth_apps.zendesk]\nclient_id = "z"\nclient_secret_env = "CI_DEPLOY_TOKEN"\n'
        'authorize_url = "https://{subdomain}.zendesk.com/oauth/authorizations/new"\n'
    )
    r = cli("apply", "-f", str(write(cfg, text)))
    assert r.code == 0, r.err


def test_a_terminal_may_confirm_the_hosts(home, cli, cfg, ci, monkeypatch):
    from botctl.cli import apply_cmd

    monkeypatch.setattr(apply_cmd.context, "interactive", lambda: True)
    text = (
        WS + '\n[oauth_apps.hubspot]\nclient_id = "x"\nclient_secret_env = "CI_DEPLOY_TOKEN"\n'
        'token_url = "https://auth.attacker.test/token"\n'
    )
    p = write(cfg, text)
    r = cli("apply", "-f", str(p), input="n\n")
    assert r.code == 2 and "auth.attacker.test" in r.err and state(home) is None
    r = cli("apply", "-f", str(p), input="y\n")
    assert r.code == 0, r.err
    assert state(home)["_global_apps"] == ["hubspot"]


# -- 1b. files published to visitors --------------------------------------------------------------------


def _secret_file(tmp_path):
    f = tmp_path / "runner" / ".aws" / "credentials"
    f.parent.mkdir(parents=True)
    f.write_text(f"# Credentials\n\n{CREDS}\n")
    return f


@pytest.mark.parametrize("layout", ["file_link_outside", "file_link_inside", "folder_link", "named_link"])
def test_symlinked_knowledge_is_never_published(home, cli, cfg, tmp_path, layout):
    creds = _secret_file(tmp_path)
    paths = '["help/"]'
    if layout == "file_link_outside":
        (cfg / "help" / "faq.md").symlink_to(creds)
    elif layout == "file_link_inside":
        (cfg / "notes.md").write_text(f"# Notes\n\n{CREDS}\n")
        (cfg / "help" / "faq.md").symlink_to(cfg / "notes.md")
    elif layout == "folder_link":
        (cfg / "help" / "more").symlink_to(creds.parent, target_is_directory=True)
        creds.rename(creds.with_suffix(".md"))
    else:
        (cfg / "faq.md").symlink_to(creds)
        paths = '["faq.md"]'
    text = WS + f"\n[workspaces.acme.knowledge]\npaths = {paths}\n"
    p = write(cfg, text)
    r = cli("apply", "-f", str(p))
    assert r.code == 2, r.err
    assert f"{p}:{line_of(text, 'paths')}: workspaces.acme.knowledge.paths:" in r.err
    assert "symbolic link" in r.err
    no_leak(r, "wJalrXUtnFEMI")
    assert state(home) is None


@pytest.mark.parametrize("path", ["../outside/", "/ABS/faq.md", "help/../../outside/faq.md"])
def test_knowledge_paths_stay_inside_the_files_folder(home, cli, cfg, tmp_path, path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "faq.md").write_text(f"# FAQ\n\n{CREDS}\n")
    text = WS + f'\n[workspaces.acme.knowledge]\npaths = ["{path.replace("/ABS", str(outside))}"]\n'
    r = cli("apply", "-f", str(write(cfg, text)))
    assert r.code == 2, r.err
    assert "outside the file's folder" in r.err
    no_leak(r, "wJalrXUtnFEMI")
    assert state(home) is None


@pytest.mark.parametrize("kind", ["outside", "symlink"])
def test_public_key_path_stays_inside_and_is_not_a_link(home, cli, cfg, tmp_path, kind):
    pem = (cfg / "keys" / "site.pub.pem").read_text()
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_text(pem)
    if kind == "outside":
        where = "../elsewhere.pem"
    else:
        (cfg / "keys" / "link.pem").symlink_to(elsewhere)
        where = "keys/link.pem"
    text = WS + f'\n[[workspaces.acme.identity.public_keys]]\nkid = "k"\nalg = "ES256"\npath = "{where}"\n'
    p = write(cfg, text)
    r = cli("apply", "-f", str(p))
    assert r.code == 2, r.err
    assert f"{p}:{line_of(text, 'path =')}: workspaces.acme.identity.public_keys[0].path:" in r.err
    assert state(home) is None


def test_a_fifo_in_the_help_folder_does_not_hang_ci(home, cfg, botctl_proc):
    os.mkfifo(cfg / "help" / "pipe.md")
    p = write(cfg, WS + '\n[workspaces.acme.knowledge]\npaths = ["help/"]\n')
    r = botctl_proc("apply", "-f", str(p), timeout=30)
    assert r.code == 2 and "not a regular file" in r.err and "Traceback" not in r.err


def test_a_folder_swapped_for_a_link_after_the_walk_is_caught_at_open(tmp_path):
    from botctl import knowledge
    from botctl.errors import UsageError

    base = tmp_path / "repo"
    (base / "help").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "faq.md").write_text(f"# FAQ\n\n{CREDS}\n")
    (base / "help" / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError) as exc:
        knowledge.parse_document(base / "help" / "sub" / "faq.md", "sub/faq.md", within=base)
    assert "outside" in exc.value.message and "wJalrXUtnFEMI" not in exc.value.message


def test_knowledge_add_refuses_links_unless_told_to_follow(home, cli, tmp_path):
    creds = _secret_file(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "shipping.md").write_text("# Shipping\n\nStandard shipping takes three to five days.\n")
    (docs / "faq.md").symlink_to(creds)
    assert cli("workspace", "create", "acme").code == 0
    r = cli("knowledge", "add", "-w", "acme", str(docs), "--json")
    assert r.code == 2
    assert r.json()["error"]["code"] == "symlink_refused" and "--follow-symlinks" in r.json()["error"]["hint"]
    assert cli("knowledge", "list", "-w", "acme", "--json").json() == []  # nothing half-added
    link = tmp_path / "link.md"
    link.symlink_to(docs / "shipping.md")
    r = cli("knowledge", "add", "-w", "acme", str(link))
    assert r.code == 2 and "symbolic link" in r.err
    r = cli("knowledge", "add", "-w", "acme", str(docs), "--follow-symlinks", "--json")
    assert r.code == 0, r.err
    assert sorted(r.json()["added"]) == ["faq.md", "shipping.md"]


def test_follow_symlinks_survives_a_loop(home, cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nalpha beta gamma\n")
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    assert cli("workspace", "create", "acme").code == 0
    r = cli("knowledge", "add", "-w", "acme", str(docs), "--follow-symlinks", "--json")
    assert r.code == 0, r.err and r.json()["added"] == ["a.md"]


# -- 1c. --prune destroys tenants only when told to -----------------------------------------------------


@pytest.fixture
def two_tenants(home, cli, cfg, sandbox, monkeypatch):
    creds = sandbox.credentials()
    monkeypatch.setenv("STRIPE_KEY", creds["stripe"]["api_key"])
    monkeypatch.setenv("ZENDESK_TOKEN", creds["zendesk"]["access_token"])
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", "hubspot-client-secret-value")
    monkeypatch.setenv("BOTCTL_SANDBOX", sandbox.url)
    assert cli("apply", "-f", str(cfg / "acme.toml")).code == 0
    text = (cfg / "acme.toml").read_text().split("[workspaces.globex]")[0]
    text = text.replace(
        "[workspaces.acme.connections.zendesk]   # an OAuth connector: only a vendor-issued token "
        'via env here\nsubdomain = "acme"\naccess_token_env = "ZENDESK_TOKEN"\n',
        "",
    )
    return write(cfg, text, "typo.toml")


def _audit_len(cli):
    return len(cli("audit", "--json", "-n", "1000").ndjson())


def test_prune_without_yes_changes_nothing(home, cli, two_tenants):
    before, records = state(home), _audit_len(cli)
    r = cli("apply", "-f", str(two_tenants), "--prune")
    assert r.code == 2, r.err
    assert "workspace globex" in r.err and "connection acme/zendesk" in r.err and "--yes" in r.err
    assert state(home) == before and _audit_len(cli) == records
    r = cli("apply", "-f", str(two_tenants), "--prune", "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "confirmation_required"
    assert state(home) == before and _audit_len(cli) == records
    r = cli("apply", "-f", str(two_tenants), "--prune", "--yes", "--json")
    assert r.code == 0, r.err
    s = state(home)
    assert set(s) == {"acme", "_global_apps"} and s["acme"]["connections"] == {"stripe": "active"}


def test_prune_dry_run_marks_destructive_steps(home, cli, two_tenants):
    r = cli("apply", "-f", str(two_tenants), "--prune", "--dry-run", "--json")
    assert r.code == 0, r.err
    marks = {(s["kind"], s["name"]): s["destructive"] for s in r.json()["plan"]}
    assert marks[("workspace", "globex")] is True and marks[("connection", "acme/zendesk")] is True
    assert marks[("workspace", "acme")] is False
    r = cli("apply", "-f", str(two_tenants), "--prune", "--dry-run")
    line = next(x for x in r.out.splitlines() if x.startswith("delete\tworkspace\tglobex"))
    assert "DESTRUCTIVE" in line
    assert "--yes" in r.err


def test_prune_confirmed_on_a_terminal(home, cli, two_tenants, monkeypatch):
    from botctl.cli import apply_cmd

    monkeypatch.setattr(apply_cmd.context, "interactive", lambda: True)
    before = state(home)
    r = cli("apply", "-f", str(two_tenants), "--prune", input="n\n")
    assert r.code == 2 and "workspace globex" in r.err and state(home) == before
    r = cli("apply", "-f", str(two_tenants), "--prune", input="y\n")
    assert r.code == 0, r.err
    assert "globex" not in state(home)


# -- 1d. a secret pasted where a variable name belongs --------------------------------------------------


@pytest.mark.parametrize(
    "table, key",
    [
        ("[workspaces.acme.connections.stripe]", "api_key_env"),
        ('[workspaces.acme.oauth_apps.hubspot]\nclient_id = "x"', "client_secret_env"),
        ('[oauth_apps.zendesk]\nclient_id = "x"', "client_secret_env"),
        ('[workspaces.acme.connections.zendesk]\nsubdomain = "acme"', "access_token_env"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        # Made-up values in the shapes of real keys, split so secret scanners do not take this file for a leak.
        "rk_" + "live_51HxQ2nLkd8s9AbCdEfGhIjKlMnOp",
        "sk_" + "test_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a",
        "Bearer abc.def.ghi",
        "correct horse battery staple",
        "stripe_key",
    ],
)
def test_a_secret_pasted_into_an_env_field_is_not_echoed(home, cli, cfg, table, key, value):
    text = WS + f'\n{table}\n{key} = "{value}"\n'
    p = write(cfg, text)
    for args in ((), ("--json",)):
        r = cli("apply", "-f", str(p), *args)
        assert r.code == 2
        assert value not in r.out + r.err
        msg = r.json()["error"]["message"] if args else r.err
        assert f"{p}:{line_of(text, key)}:" in msg and key in msg and "literal secret" in msg
    assert state(home) is None


# -- a path on the command line, planted in the checkout ------------------------------------------------


def test_secrets_out_is_not_read_or_written_through_a_link(home, cli, cfg, tmp_path):
    target = tmp_path / "runner" / "docker-config.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps({"auths": {"registry.example": {"auth": "ZG9ja2VyOnMzY3JldA=="}}}))
    planted = cfg / ".botctl-secrets.json"
    planted.symlink_to(target)
    p = write(cfg, WS + "\n[workspaces.acme.identity]\nhs256 = true\n")
    r = cli("apply", "-f", str(p), "--secrets-out", str(planted))
    assert r.code == 2, r.err
    assert "--secrets-out" in r.err and "symbolic link" in r.err
    assert planted.is_symlink() and "ZG9ja2VyOnMzY3JldA" not in r.out + r.err
    assert state(home) is None
