"""Completion scripts stay in sync with the CLI; names complete; doctor says what to fix."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FILES = {"bash": "botctl.bash", "zsh": "_botctl", "fish": "botctl.fish"}


@pytest.mark.parametrize("shell", sorted(FILES))
def test_committed_completions_are_current(shell):
    from botctl.cli.completions_cmd import script

    committed = (REPO / "completions" / FILES[shell]).read_text()
    assert script(shell) == committed, f"run: botctl completions {shell} > completions/{FILES[shell]}"


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_BOTCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    out = subprocess.run([sys.executable, "-m", "botctl"], env=env, capture_output=True, text=True).stdout
    return out.split()


def test_workspace_and_connector_names_complete(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    assert cli("workspace", "create", "alpha-co").code == 0
    assert cli("workspace", "create", "beta").code == 0
    assert _complete("botctl workspace show a", 3) == ["acme", "alpha-co"]
    assert _complete("botctl connect stri", 2) == ["stripe"]
    assert _complete("botctl audit -w b", 3) == ["beta"]


def test_completions_bad_shell(cli):
    r = cli("completions", "powershell-ish")
    assert r.code == 2 and "unknown shell" in r.err


@pytest.mark.sqlite_only  # tampers with the SQLite files
def test_doctor(home, cli):
    r = cli("doctor", "--json")
    assert r.code == 1 and r.json()["findings"][0]["fix"] == "botctl init"
    assert cli("workspace", "create", "acme").code == 0
    r = cli("doctor", "--json")
    findings = {f["check"]: f for f in r.json()["findings"]}
    assert findings["master key"]["status"] == "warn" and "BOTCTL_MASTER_KEY" in findings["master key"]["fix"]
    assert findings["audit"]["status"] == "ok" and findings["permissions"]["status"] == "ok"
    assert r.code == 0 and r.json()["ok"] is True  # a warning (the plain-file key) is not a failure...
    r = cli("doctor", "--strict", "--json")
    assert r.code == 1 and r.json()["ok"] is False  # ... unless --strict
    os.chmod(home.vault_db, 0o644)
    r = cli("doctor")
    assert "FAIL  permissions" in r.out and "chmod" in r.out
    os.chmod(home.vault_db, 0o600)
    import sqlite3

    c = sqlite3.connect(home.audit_db)
    c.execute("UPDATE records SET body = replace(body, '\"ok\"', '\"denied\"') WHERE seq = 1")
    c.commit()
    c.close()
    findings = {f["check"]: f for f in json.loads(cli("doctor", "--json").out)["findings"]}
    assert findings["audit"]["status"] == "fail"


def test_doctor_clean_with_env_key(home, cli, monkeypatch):
    import base64

    monkeypatch.setenv("BOTCTL_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    assert cli("workspace", "create", "acme").code == 0
    r = cli("doctor", "--json")
    assert r.code == 0, r.out
    assert r.json()["ok"] is True
