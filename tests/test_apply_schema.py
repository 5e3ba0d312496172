"""`apply` for CI (issue #20): a published JSON Schema of botctl.toml that the examples satisfy,
problems as a structured list with --json, and --detailed-exitcode for drift checks."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest

from botctl.provision.schema import json_schema

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "docs" / "botctl.schema.json"
EXAMPLE = REPO / "examples" / "botctl.toml"
ENV = {"STRIPE_KEY": "rk_test_x", "ZENDESK_TOKEN": "zd_x", "HUBSPOT_CLIENT_SECRET": "hs_x"}


def _validator():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_published_schema_is_the_generated_one():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "regenerate docs/botctl.schema.json: python -c 'import json; from botctl.provision.schema import "
        "json_schema; print(json.dumps(json_schema(), indent=2))' > docs/botctl.schema.json"
    )


def test_the_examples_satisfy_the_schema():
    validator = _validator()
    files = {"examples/botctl.toml": tomllib.loads(EXAMPLE.read_text())}
    readme = (REPO / "README.md").read_text()
    for n, block in enumerate(re.findall(r"```toml\n(.*?)```", readme, flags=re.S)):
        files[f"README.md toml block {n}"] = tomllib.loads(block)
    assert len(files) >= 2
    for name, data in files.items():
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], name


@pytest.mark.parametrize(
    "bad",
    [
        {"workspaces": {"acme": {"plan": "gold"}}},
        {"workspaces": {"acme": {"plna": "pro"}}},
        {"workspaces": {"Acme": {"plan": "pro"}}},
        {"workspaces": {"acme": {"connections": {"stripe": {"api_key": "rk_live_literal"}}}}},
        {"workspaces": {"acme": {"connections": {"stripe": {"api_key_env": "rk_live_pasted"}}}}},
        {"workspaces": {"acme": {"connections": {"strpe": {"api_key_env": "K"}}}}},
        {
            "workspaces": {
                "acme": {"identity": {"public_keys": [{"kid": "k", "alg": "HS256", "path": "k.pem"}]}}
            }
        },
        {"workspaces": {"acme": {"identity": {"public_keys": [{"kid": "k", "alg": "ES256"}]}}}},
        {"workspace": {"acme": {"plan": "pro"}}},
    ],
)
def test_the_schema_refuses_what_apply_refuses(bad, cli, tmp_path):
    assert list(_validator().iter_errors(bad)), bad
    lines = []

    def dump(table, prefix):  # a tiny TOML writer for these shapes
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            if isinstance(v, list):
                for item in v:
                    lines.append(f"[[{prefix}.{k}]]")
                    lines.extend(f"{ik} = {json.dumps(iv)}" for ik, iv in item.items())
            else:
                lines.append(f"{k} = {json.dumps(v)}")
        for k, v in table.items():
            if isinstance(v, dict):
                dump(v, f"{prefix}.{k}" if prefix else k)

    dump(bad, "")
    (tmp_path / "bad.toml").write_text("\n".join(lines) + "\n")
    r = cli("apply", "-f", str(tmp_path / "bad.toml"), "--dry-run")
    assert r.code == 2, (bad, r.err)


def test_apply_accepts_the_example(cli, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    r = cli("apply", "-f", str(EXAMPLE), "--dry-run", "--json")
    assert r.code == 0, r.err
    assert {s["kind"] for s in r.json()["plan"]} >= {"workspace", "connection", "knowledge", "oauth_app"}


def test_json_problems_are_a_structured_list(cli, tmp_path):
    (tmp_path / "botctl.toml").write_text(
        '[workspaces.acme]\nplan = "gold"\n\n[workspaces.acme.connections.zendesk]\naccess_token_env = "ZD"\n'
    )
    r = cli("apply", "-f", str(tmp_path / "botctl.toml"), "--json")
    assert r.code == 2
    problems = r.json()["error"]["problems"]
    by_key = {p["key"]: p for p in problems}
    plan = by_key["workspaces.acme.plan"]
    assert plan["file"] == str(tmp_path / "botctl.toml") and plan["line"] == 2 and "gold" in plan["message"]
    assert by_key["workspaces.acme.connections.zendesk.subdomain"]["line"] == 4
    assert all(set(p) == {"file", "line", "key", "message"} for p in problems)
    r = cli("apply", "-f", str(tmp_path / "nope.toml"), "--json")
    assert r.json()["error"]["problems"] == [
        {"file": str(tmp_path / "nope.toml"), "line": None, "key": None, "message": "no such file."}
    ]


def test_detailed_exitcode_for_drift_checks(cli, tmp_path):
    f = tmp_path / "botctl.toml"
    f.write_text('[workspaces.acme]\nplan = "pro"\n')
    assert cli("apply", "-f", str(f), "--dry-run", "--detailed-exitcode").code == 2  # changes to make
    assert cli("apply", "-f", str(f), "--detailed-exitcode").code == 2  # changes made
    assert cli("apply", "-f", str(f), "--detailed-exitcode").code == 0  # nothing to change
    assert cli("apply", "-f", str(f), "--dry-run", "--detailed-exitcode").code == 0
    f.write_text('[workspaces.acme]\nplan = "business"\n')
    assert cli("apply", "-f", str(f), "--dry-run", "--detailed-exitcode").code == 2  # drift
    assert cli("apply", "-f", str(f), "--dry-run").code == 0  # without the flag: as before
    f.write_text('[workspaces.acme]\nplan = "gold"\n')
    r = cli("apply", "-f", str(f), "--dry-run", "--detailed-exitcode")
    assert r.code == 1 and "gold" in r.err  # an error is 1, never mistaken for "changes"
