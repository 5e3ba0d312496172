"""Secrets at rest and in motion, after the full demo (issue #8).

`botctl demo --keep` runs the whole product: eight connections (API keys, OAuth code + PKCE, a refresh
during the run), identity secrets, visitors acting, the audit trail. Then every secret value that took
part — the master key, every credential the vault holds (decrypted with the master key), every token and
authorization code the sandbox ever issued, every credential the sandbox hands out, the identity secrets
— is looked for, raw and in the encodings a careless log would use, in:
every byte under the home (databases, WAL/SHM and journal files, logs, pid and state files), the demo's
own output, the output of the operator commands, and the argv and environment of every running process
(supervisor, provider, edge). Zero hits; the master key is allowed only in the environment it was given
in (its chosen store) and never reaches the edge.
"""

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path

import httpx
import pytest

from botctl import crypto

pytestmark = pytest.mark.slow

# Leaf names of secret values in the sandbox's credential listing (not client ids, usernames or URLs).
SECRET_FIELD = re.compile(
    r"^(access_token|refresh_token|api_key|client_secret|secret_key|consumer_key|"
    r"consumer_secret|token|password|secret|webhook_secret)$"
)


def _walk(obj, out: set[str], key: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(v, out, str(k))
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, out, key)
    elif isinstance(obj, str) and SECRET_FIELD.match(key) and len(obj) >= 12:
        out.add(obj)


def _forms(secret: str) -> set[bytes]:
    """The secret as it would appear if something wrote it carelessly: raw, base64 (incl. as part of a
    Basic credential), URL-encoded, JSON-escaped."""
    raw = secret.encode()
    forms = {
        raw,
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        urllib.parse.quote(secret, safe="").encode(),
        json.dumps(secret)[1:-1].encode(),
    }
    return {f for f in forms if len(f) >= 12}


def _vault_secrets(home: Path, master_key_b64: str) -> set[str]:
    """Decrypt every secret in the vault, independently of botctl's own listing code paths."""
    from botctl.home import Home
    from botctl.session import Session
    from botctl.vault import WorkspaceRef

    os.environ["BOTCTL_MASTER_KEY"] = master_key_b64
    try:
        with Session(Home(home), create=False) as app:
            rows = app.vault.conn.execute(
                "SELECT s.workspace_id, w.name, s.owner, s.field FROM secrets s JOIN workspaces w "
                "ON w.id = s.workspace_id"
            ).fetchall()
            values = {
                app.vault.get_secret(WorkspaceRef(wid, name), owner, field).reveal()
                for wid, name, owner, field in rows
            }
    finally:
        del os.environ["BOTCTL_MASTER_KEY"]
    return values


def _proc(pid: int, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return b""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    key_b64 = base64.b64encode(crypto.new_key()).decode()
    env = {k: v for k, v in os.environ.items() if k not in ("BOTCTL_HOME",)}
    env.update(BOTCTL_MASTER_KEY=key_b64, BOTCTL_NO_KEYRING="1", NO_COLOR="1")
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", "demo", "--keep"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = proc.stdout + proc.stderr
    home_m = re.search(r"export BOTCTL_HOME=(\S+)", out)
    sandbox_m = re.search(r"sandbox (http://127\.0\.0\.1:\d+)", out)
    kill_m = re.search(r"kill (\d+)", out)
    env["BOTCTL_HOME"] = home_m.group(1) if home_m else ""
    try:
        assert proc.returncode == 0 and home_m and sandbox_m, out[-3000:]
        yield {
            "env": env,
            "key": key_b64,
            "home": Path(home_m.group(1)),
            "sandbox": sandbox_m.group(1),
            "output": out,
        }
    finally:
        if home_m:
            subprocess.run(
                [sys.executable, "-m", "botctl", "daemon", "stop"], env=env, capture_output=True, timeout=60
            )
        if kill_m:
            try:
                os.kill(int(kill_m.group(1)), signal.SIGTERM)
            except ProcessLookupError:
                pass
        if home_m:
            import shutil

            shutil.rmtree(Path(home_m.group(1)).parent, ignore_errors=True)


@pytest.fixture(scope="module")
def needles(demo):
    sandbox = httpx.Client(base_url=demo["sandbox"], timeout=10)
    issued = sandbox.get("/_sandbox/tokens").json()
    from_sandbox: set[str] = set()
    _walk(sandbox.get("/_sandbox/credentials").json(), from_sandbox)
    tokens = {t["token"] for kind in ("access_tokens", "refresh_tokens", "codes") for t in issued[kind]}
    vault = _vault_secrets(demo["home"], demo["key"])
    # The run really exercised OAuth: tokens were issued, and one was refreshed (so some are no longer in
    # the vault but still must not be anywhere).
    assert len(issued["refresh_tokens"]) >= 4 and len(issued["codes"]) >= 4
    assert len(vault) >= 12, "the vault should hold the demo's credentials and identity secrets"
    assert tokens - vault, "rotated tokens that left the vault are part of the scan too"
    secrets = {s for s in from_sandbox | tokens | vault if len(s) >= 12}
    by_form = {}
    for s in secrets:
        for f in _forms(s):
            by_form[f] = s[:4] + "…"
    key_forms = {
        demo["key"].encode(): "master key",
        base64.b64decode(demo["key"]): "master key (raw)",
        demo["key"].encode().hex().encode(): "master key (hex)",
    }
    planted = b"log line: Authorization: Basic " + next(iter(by_form)) + b"\n"
    assert _hits(planted, by_form)  # the scan finds what it looks for
    return by_form, key_forms


def _hits(data: bytes, forms: dict[bytes, str]) -> list[str]:
    return [label for f, label in forms.items() if f in data]


def test_no_secret_in_any_file_under_the_home(demo, needles):
    by_form, key_forms = needles
    # A checkpoint would move the WAL into the main file: scan as the daemon left it, WAL and all.
    files = [p for p in demo["home"].rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"vault.db", "audit.db", "daemon.log", "state.json"} <= names, names
    assert any(n.endswith("-wal") for n in names), names
    scanned = 0
    for p in files:
        data = p.read_bytes()
        scanned += len(data)
        assert not _hits(data, by_form), (p, _hits(data, by_form))
        assert not _hits(data, key_forms), (p, "master key")
    assert scanned > 100_000


def test_sqlite_pages_hold_no_plaintext_even_in_free_space(demo, needles):
    """Beyond the raw bytes: the decoded rows of every table, so nothing is hiding behind a compression
    or encoding the byte scan would miss."""
    by_form, _ = needles
    for db in ("vault.db", "audit.db"):
        conn = sqlite3.connect(f"file:{demo['home'] / db}?mode=ro", uri=True)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            for row in conn.execute(f'SELECT * FROM "{t}"'):
                blob = json.dumps([c if not isinstance(c, bytes) else c.hex() for c in row]).encode()
                assert not _hits(blob, by_form), (db, t)
        conn.close()


def test_no_secret_in_the_demo_or_operator_output(demo, needles):
    by_form, key_forms = needles
    outputs = {"demo": demo["output"]}
    for args in (
        ("connections", "list", "--json"),
        ("connections", "list"),
        ("audit", "--json", "-n", "10000"),
        ("audit",),
        ("audit", "verify", "--json"),
        ("doctor", "--json"),
        ("vault", "status", "--json"),
        ("identity", "list", "-w", "acme", "--json"),
        ("daemon", "status", "--json"),
        ("oauth-app", "list", "--json"),
        ("workspace", "show", "acme", "--json"),
    ):
        p = subprocess.run(
            [sys.executable, "-m", "botctl", *args],
            env=demo["env"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode in (0, 1), (args, p.stderr)  # doctor exits 1 when it has findings
        outputs[" ".join(args)] = p.stdout + p.stderr
    for name, text in outputs.items():
        data = text.encode()
        assert not _hits(data, by_form), (name, _hits(data, by_form))
        assert not _hits(data, key_forms), (name, "master key")


def test_no_secret_in_process_argv_or_environ(demo, needles):
    by_form, key_forms = needles
    state = json.loads((demo["home"] / "run" / "state.json").read_text())
    pids = {
        "supervisor": state["supervisor_pid"],
        "provider": state["provider"]["pid"],
        "edge": state["edge"]["pid"],
    }
    for role, pid in pids.items():
        argv, environ = _proc(pid, "cmdline"), _proc(pid, "environ")
        assert argv, (role, "not running")
        assert not _hits(argv, by_form) and not _hits(argv, key_forms), (role, "argv")
        assert not _hits(environ, by_form), (role, "environ", _hits(environ, by_form))
        if role == "edge":
            # The edge holds nothing secret: not even the key the operator chose to pass by environment.
            assert not _hits(environ, key_forms), "master key in the edge's environment"
            assert b"BOTCTL_MASTER_KEY" not in environ
