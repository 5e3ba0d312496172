"""Master-key rotation never loses the vault: killed or interrupted at every step, or refused by a
locked audit log, for every key source, one of the keys the operator holds still opens everything.

Real subprocesses (`python -m botctl`); the steps are reached with the test-only failpoints
(`BOTCTL_FAILPOINTS`, src/botctl/failpoints.py). The operator is emulated as the command instructs
them: they keep the old key until the command says the rotation is complete, then (for a key that
comes from BOTCTL_MASTER_KEY or a systemd credential) put the new key in its place.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCES = ("file", "env-generated", "env-stdin", "systemd")
FAILPOINTS = (
    "rotate.pending_stored",
    "rotate.rewrapped",
    "rotate.audited",
    "rotate.committed",
    "rotate.promoted",
)
WS = "alpha"
PENDING = "master.key.next"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _base_env() -> dict[str, str]:
    # Without PYTHONUNBUFFERED: stdout to a pipe is block-buffered, as for an operator's `| tee`.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BOTCTL_") and k not in ("CREDENTIALS_DIRECTORY", "CI", "PYTHONUNBUFFERED")
    }
    env.update(BOTCTL_NO_KEYRING="1", NO_COLOR="1")
    return env


@dataclass
class Case:
    source: str
    home: Path
    creds: Path | None  # systemd: the CREDENTIALS_DIRECTORY
    old_key: str  # base64
    kid: str
    secret: str
    operator_key: str | None = None  # what BOTCTL_MASTER_KEY / the credential holds right now

    def use_key(self, key: str) -> None:
        """The operator puts `key` where botctl reads it (env var or the systemd credential)."""
        self.operator_key = key
        if self.creds is not None:
            (self.creds / "botctl-master-key").write_text(key + "\n")

    def run(
        self, *args: str, input: str | None = None, failpoints: str | None = None, timeout: float = 60
    ) -> Result:
        env = _base_env()
        env["BOTCTL_HOME"] = str(self.home)
        if self.source.startswith("env"):
            env["BOTCTL_MASTER_KEY"] = self.operator_key or ""
        if self.creds is not None:
            env["CREDENTIALS_DIRECTORY"] = str(self.creds)
        if failpoints:
            env["BOTCTL_FAILPOINTS"] = failpoints
        proc = subprocess.run(
            [sys.executable, "-m", "botctl", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def rotate(self, *extra: str, new_key: str | None = None, failpoints: str | None = None) -> Result:
        args = ["vault", "rotate-master-key", *extra, "--yes"]  # no terminal here: a rotation needs --yes
        if self.source == "env-stdin":
            args.append("--new-key-stdin")
        return self.run(*args, input=(new_key + "\n") if new_key else None, failpoints=failpoints)

    def meta(self, key: str) -> str:
        conn = sqlite3.connect(self.home / "vault.db")
        try:
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
        finally:
            conn.close()

    def kek_version(self) -> int:
        return int(self.meta("kek_version"))

    def rotation_records(self) -> list[dict]:
        conn = sqlite3.connect(self.home / "audit.db")
        try:
            rows = conn.execute(
                "SELECT body FROM records WHERE event = 'vault.master_key_rotated' ORDER BY seq"
            )
            return [json.loads(r[0]) for r in rows]
        finally:
            conn.close()

    @property
    def pending(self) -> Path:
        return self.home / PENDING


_TEMPLATES: dict[str, tuple[Path, Path | None, str, str, str]] = {}
_TEMPLATE_LOCK = threading.Lock()


def _template(root: Path, source: str) -> tuple[Path, Path | None, str, str, str]:
    """A home with two workspaces and an HS256 secret, built once per source and copied per case."""
    with _TEMPLATE_LOCK:
        if source in _TEMPLATES:
            return _TEMPLATES[source]
        base = root / f"template-{source}"
        base.mkdir(parents=True)
        creds = base / "creds" if source == "systemd" else None
        if creds is not None:
            creds.mkdir(mode=0o700)
        key = _b64(os.urandom(32)) if source != "file" else ""
        case = Case(source, base / "home", creds, key, "", "")
        if key:
            case.use_key(key)
        for args in (
            ("init",),
            ("workspace", "create", WS, "--plan", "pro"),
            ("workspace", "create", "beta"),
        ):
            r = case.run(*args)
            assert r.code == 0, r.err
        r = case.run("identity", "rotate", "-w", WS, "--json")
        assert r.code == 0, r.err
        ident = r.json()
        if source == "file":
            key = (case.home / "master.key").read_text().strip()
        _TEMPLATES[source] = (base, creds, key, ident["kid"], ident["secret"])
        return _TEMPLATES[source]


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    return tmp_path_factory.mktemp("rotation-templates")


def _case(templates: Path, dest: Path, source: str) -> Case:
    base, creds, key, kid, secret = _template(templates, source)
    shutil.copytree(base, dest)
    case = Case(source, dest / "home", (dest / "creds") if creds else None, key, kid, secret)
    if source != "file":
        case.use_key(key)
    return case


def _opens(case: Case) -> tuple[bool, list[Result]]:
    """Does the operator's current key open the vault: status says so, the chain verifies, a secret decrypts?"""
    import jwt

    status = case.run("vault", "status", "--json")
    verify = case.run("audit", "verify")
    mint = case.run("identity", "mint", "-w", WS, "--sub", "u-ada")
    results = [status, verify, mint]
    for r in results:
        assert "Traceback" not in r.err, r.err
    if status.code != 0 or not status.json()["master_key"]["opens_vault"]:
        return False, results
    assert verify.code == 0, verify.err
    assert mint.code == 0, mint.err
    claims = jwt.decode(mint.out.strip(), case.secret, algorithms=["HS256"], audience=WS)
    assert claims["sub"] == "u-ada"
    return True, results


def _check_records(case: Case, completed: bool) -> None:
    """A committed rotation has exactly one record naming its key version and check value; an
    uncommitted one at most the one written just before its vault COMMIT, whose kcv is not the vault's."""
    version, kcv = case.kek_version(), case.meta("kcv")
    records = case.rotation_records()
    if completed:
        assert version == 2
    if version == 2:
        assert [(r["detail"]["key_version"], r["detail"]["kcv"]) for r in records] == [(2, kcv)], records
        assert records[0]["outcome"] == "ok"
    else:
        assert len(records) <= 1 and all(
            r["detail"]["key_version"] == 2 and r["detail"]["kcv"] != kcv for r in records
        ), records


def _printed_key(r: Result) -> str | None:
    lines = [line.strip() for line in r.out.splitlines() if line.strip()]
    return lines[0] if lines else None


@pytest.mark.slow
@pytest.mark.parametrize("action", ["kill", "interrupt"])
@pytest.mark.parametrize("failpoint", FAILPOINTS)
@pytest.mark.parametrize("source", SOURCES)
def test_rotation_interrupted_at_every_step(templates, tmp_path, source, failpoint, action):
    case = _case(templates, tmp_path / "case", source)
    supplied = _b64(os.urandom(32)) if source == "env-stdin" else None
    r = case.rotate(new_key=supplied, failpoints=f"{failpoint}={action}")
    assert "Traceback" not in r.err, r.err
    if action == "kill":
        assert r.code == -signal.SIGKILL, (r.code, r.err)
    else:
        assert r.code == 130 and "interrupted" in r.err, (r.code, r.err)
    completed = False  # the command never got to say "complete"
    committed = case.kek_version() == 2
    first_kcv = case.meta("kcv")
    printed = _printed_key(r) if source in ("env-generated", "systemd") else None
    if source in ("env-generated", "systemd"):
        # The key is shown (and kept in master.key.next) before anything is re-wrapped.
        assert printed and len(base64.b64decode(printed)) == 32, r.out
        assert printed != case.old_key
        if committed:
            assert case.pending.read_text().strip() == printed
    if source == "env-stdin" and committed:
        # The operator's own key: nothing was written beside the vault; they try the key they supplied.
        assert not case.pending.exists()
        case.use_key(supplied)
    # Otherwise the operator keeps the key they had, as the command told them.
    ok, results = _opens(case)
    assert ok, [x.err for x in results]
    _check_records(case, completed)
    # Opening cleaned up: no stale pending key; a committed env/systemd rotation keeps master.key.next
    # (the only place the new key lives until the operator stores it) and says so on every open.
    status = results[0].json()
    if source in ("env-generated", "systemd") and committed:
        assert case.pending.exists()
        assert status["pending_rotation"]["state"] == "committed"
        assert PENDING in results[1].err and "warning" in results[1].err
        # The operator now does what the warning says: the new key replaces the old one; the file goes.
        case.use_key(printed)
        ok, results = _opens(case)
        assert ok and not case.pending.exists()
    else:
        # status only reads; the first command that opened the vault settled what was left.
        assert not case.pending.exists()
        if status["pending_rotation"] is not None:
            assert status["pending_rotation"]["state"] in ("stale", "committed")
            assert status["pending_rotation"]["state"] == ("committed" if committed else "stale")
    assert case.run("vault", "status", "--json").json()["pending_rotation"] is None
    for x in results:
        assert printed is None or printed not in x.out + x.err  # the key is never shown again
    # A completed rotation afterwards works and is recorded once.
    again = case.rotate(new_key=_b64(os.urandom(32)) if source == "env-stdin" else None)
    assert again.code == 0, again.err
    assert case.kek_version() == (3 if committed else 2)
    done = [(rec["detail"]["key_version"], rec["detail"]["kcv"]) for rec in case.rotation_records()]
    assert done.count((case.kek_version(), case.meta("kcv"))) == 1
    if committed:
        assert done.count((2, first_kcv)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES)
def test_completed_rotation_and_operator_switch(templates, tmp_path, source):
    case = _case(templates, tmp_path / "case", source)
    supplied = _b64(os.urandom(32)) if source == "env-stdin" else None
    r = case.rotate(new_key=supplied)
    assert r.code == 0, r.err
    assert "rotation complete" in r.err
    new = supplied or _printed_key(r)
    if source in ("env-generated", "systemd"):
        err = r.err.lower()
        assert new and err.index("keep the old key") < err.index("rotation complete")
        case.use_key(new)
    elif source == "env-stdin":
        assert r.out == "" and not case.pending.exists()
        case.use_key(new)
    ok, results = _opens(case)
    assert ok, [x.err for x in results]
    assert not case.pending.exists()
    _check_records(case, True)
    if source != "file":
        case.use_key(case.old_key)  # the old key opens nothing any more
        assert case.run("identity", "mint", "-w", WS, "--sub", "u").code == 5


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


def _rotate_while_audit_locked(case: Case, json_out: bool) -> Result:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(case.home / "audit.db")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        supplied = _b64(os.urandom(32)) if case.source == "env-stdin" else None
        return case.rotate(*(["--json"] if json_out else []), new_key=supplied)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_locked_audit_log_rolls_the_rotation_back(templates, tmp_path):
    """Another process holds audit.db's write lock past the busy timeout (store.BUSY_TIMEOUT_MS, 10 s):
    the audit record cannot be written, so nothing is rotated — one error line with a stable code, the
    old key still opens everything, no pending key is left, no record claims a rotation."""
    cases = [_case(templates, tmp_path / s, s) for s in SOURCES]
    modes = {"file": True, "env-generated": True, "env-stdin": True, "systemd": False}
    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(lambda c: _rotate_while_audit_locked(c, modes[c.source]), cases))
    for case, r in zip(cases, results, strict=True):
        assert r.code == 1, (case.source, r.code, r.err)
        assert "Traceback" not in r.err and "unexpected" not in r.err, r.err
        errors = [line for line in r.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "nothing was rotated" in errors[0], r.err
        assert "hint:" in r.err
        if modes[case.source]:
            assert json.loads(r.out)["error"]["code"] == "audit_unavailable", r.out
        if case.source in ("env-generated", "systemd"):
            assert "NOT applied" in r.err
        assert not case.pending.exists(), case.source
        assert case.kek_version() == 1
        ok, checks = _opens(case)
        assert ok, [x.err for x in checks]
        assert checks[0].json()["pending_rotation"] is None
        assert case.rotation_records() == []
