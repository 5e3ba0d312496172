"""Edge escape: code running inside the edge's sandbox reaches nothing of the provider's.

A real daemon is started the way an operator starts it; then tests/escape_probe.py is started exactly as
the supervisor started the edge (same interpreter, flags, user, environment, working directory and
arguments, from the daemon's own state) and goes through the edge's own start-up and confinement before
it attacks: read the vault, the audit log, their WAL/SHM, the master key, a pending key, the systemd
credential; write the audit log; list and plant files in the home; read the provider's and the
supervisor's environ/mem/maps, ptrace them, read their memory, signal them; call the provider's socket
outside its documented routes; open TCP connections. Every attempt must fail.

Two deployments, each run where it can be (the test names say which ran):
* `uid`: the daemon started as root; the edge runs as its own user (and Landlock). Root only.
* `landlock`: the daemon started by an ordinary user (created for the test when we are root); the edge is
  the same user, confined by Landlock. A control run of the same probe without the sandbox, as that user,
  proves the probe sees what the sandbox stops (it reads the vault) and that the provider and supervisor
  are still closed to their own uid (non-dumpable).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from botctl import masterkey
from botctl.crypto import new_key
from botctld.confine import landlock_abi
from cluster_kit import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
PROBE = REPO / "tests" / "escape_probe.py"
TESTER = "botctl-escape-test"
IS_ROOT = os.geteuid() == 0


def ensure_user(name: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=False,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


class Deployment:
    """One botctl home and daemon, run by `user` (None: this process's user)."""

    def __init__(self, base: Path, user: tuple[int, int] | None, env: dict[str, str]) -> None:
        self.base, self.user = base, user
        self.home = base / "home"
        self.port = free_port()
        self.env = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "HOME": str(base),
            "BOTCTL_HOME": str(self.home),
            "BOTCTL_NO_KEYRING": "1",
            "NO_COLOR": "1",
            **env,
        }

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        as_user = {"user": self.user[0], "group": self.user[1], "extra_groups": []} if self.user else {}
        proc = subprocess.run(
            [sys.executable, "-m", "botctl", *args],
            capture_output=True,
            text=True,
            timeout=90,
            env={**self.env, **(env or {})},
            cwd=self.base,
            **as_user,
        )
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def start(self) -> dict:
        self.run("init")
        self.run("workspace", "create", "acme", "--plan", "pro")
        self.run("identity", "rotate", "-w", "acme")  # an HS256 secret in the vault
        self.run("daemon", "start", "--port", str(self.port))
        return json.loads(self.run("daemon", "status", "--json").stdout)

    def stop(self) -> None:
        self.run("daemon", "stop", check=False)


def plant_key_files(d: Deployment, key_b64: str) -> None:
    """What a file-key home, or one in the middle of a master-key rotation, also holds."""
    for name in ("master.key", "master.key.next"):
        (d.home / name).write_text(key_b64 + "\n")
        os.chmod(d.home / name, 0o600)
        if d.user:
            os.chown(d.home / name, *d.user)


def targets(
    d: Deployment, status: dict, state: dict, extra_read: list[str], extra_list: tuple[str, ...] = ()
) -> dict:
    home = d.home
    # The WAL and SHM files exist while the provider holds the databases open; plant the rest an operator may have.
    read = [
        str(home / n)
        for n in (
            "vault.db",
            "vault.db-wal",
            "vault.db-shm",
            "audit.db",
            "audit.db-wal",
            "audit.db-shm",
            "master.key",
            "master.key.next",
            "run/state.json",
            "run/daemon.log",
            "run/supervisor.pid",
        )
    ] + extra_read
    for path in read:
        assert Path(path).exists(), f"target {path} must exist for the attack to mean anything"
    return {
        "read": read,
        "write": [str(home / "audit.db"), str(home / "vault.db")],
        "list": [str(home), str(home / "run"), *extra_list],
        "pids": {"provider": status["provider"]["pid"], "supervisor": status["supervisor"]["pid"]},
        "socket": state["socket"],
        "documented": "/v1/workspaces/acme/config",
        "undocumented": [
            ("GET", "/v1/secrets"),
            ("GET", "/v1/workspaces/acme/secrets"),
            ("GET", "/v1/vault"),
            ("POST", "/v1/workspaces/acme/connections"),
            ("DELETE", "/v1/workspaces/acme"),
            ("POST", "/v1/workspaces/acme/identity/rotate"),
            ("GET", "/admin"),
            ("GET", "/v1/workspaces/acme/actions/../../../status/../secrets"),
        ],
        "tcp": [("127.0.0.1", d.port), ("127.0.0.1", 5432)],
    }


def run_probe(d: Deployment, state: dict, tgt: dict, *, control: bool = False) -> dict:
    """Start the probe as the supervisor started the edge: its recorded argv, user, env, working directory."""
    edge_argv = state["edge"]["argv"]  # ["-P", "-m", "botctld", "--socket", ...]
    assert edge_argv[:3] == ["-P", "-m", "botctld"], edge_argv
    argv = [sys.executable, "-P", str(PROBE), *edge_argv[3:], "--port", "0"] + (
        ["--unconfined-control"] if control else []
    )
    edge_user = state["isolation"].get("edge_user")
    if edge_user:
        entry = pwd.getpwnam(edge_user)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    else:
        as_user = {"user": d.user[0], "group": d.user[1], "extra_groups": []} if d.user else {}
    env = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
    }
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={**env, "PROBE_TARGETS": json.dumps(tgt)},
        **as_user,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def escapes(report: dict) -> dict:
    return {name: r for name, r in report["results"].items() if r["escaped"]}


def provider_environ_holds_key(pid: int, key_b64: str) -> bool:
    with open(f"/proc/{pid}/environ", "rb") as fh:  # as root: non-dumpable only closes it to the same uid
        return key_b64.encode() in fh.read()


@pytest.fixture
def base():
    path = Path(tempfile.mkdtemp(prefix="botctl-escape-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not IS_ROOT, reason="uid separation needs root (run as root in CI)")
def test_uid_mode_edge_reaches_nothing(base):
    """As root: the edge runs as botctl-edge (+ Landlock); the key comes from a systemd credential."""
    creds = base / "credentials"
    creds.mkdir(mode=0o700)
    key = new_key()
    (creds / masterkey.SYSTEMD_CREDENTIAL).write_text(masterkey.encode(key) + "\n")
    os.chmod(creds / masterkey.SYSTEMD_CREDENTIAL, 0o400)
    d = Deployment(base, None, {"CREDENTIALS_DIRECTORY": str(creds)})
    try:
        status = d.start()
        state = json.loads((d.home / "run" / "state.json").read_text())
        assert state["isolation"]["mode"] in ("uid+landlock", "uid")
        edge_uid = pwd.getpwnam(state["isolation"]["edge_user"]).pw_uid
        assert edge_uid != 0 and os.stat(f"/proc/{status['edge']['pid']}").st_uid == edge_uid
        plant_key_files(d, masterkey.encode(key))
        tgt = targets(d, status, state, [str(creds / masterkey.SYSTEMD_CREDENTIAL)], (str(creds),))
        report = run_probe(d, state, tgt)
        print(
            "edge-escape suite ran in mode:",
            state["isolation"]["mode"],
            "as",
            state["isolation"]["edge_user"],
        )
        assert report["uid"] == edge_uid
        assert escapes(report) == {}, escapes(report)
        assert report["results"]["provider socket: documented route"]["reachable"] == "HTTP 200"
        assert len(report["results"]) > 50
    finally:
        d.stop()


@pytest.mark.skipif(not landlock_abi(), reason="this kernel has no Landlock")
def test_landlock_mode_edge_reaches_nothing(base):
    """As an ordinary user: the edge is that same user, confined by Landlock; the key comes from the env."""
    user = None
    if IS_ROOT:
        user = ensure_user(TESTER)
        os.chown(base, *user)
    key_b64 = masterkey.encode(new_key())
    d = Deployment(base, user, {"BOTCTL_MASTER_KEY": key_b64})
    try:
        status = d.start()
        state = json.loads((d.home / "run" / "state.json").read_text())
        assert state["isolation"]["mode"] == "landlock"
        plant_key_files(d, key_b64)
        tgt = targets(d, status, state, [])
        report = run_probe(d, state, tgt)
        print(
            "edge-escape suite ran in mode: landlock as uid",
            report["uid"],
            "ABI",
            report["confinement"].get("abi"),
        )
        assert report["confinement"]["sandbox"] == "landlock"
        doctor = json.loads(d.run("doctor", "--json", check=False).stdout)
        assert {"check": "isolation", "status": "ok"}.items() <= next(
            f for f in doctor["findings"] if f["check"] == "isolation"
        ).items()
        found = escapes(report)
        if landlock_abi() < 6:  # signals are scoped from ABI 6 on: say so rather than fail on an older kernel
            found = {k: v for k, v in found.items() if not k.endswith(": signal")}
        assert found == {}, found
        assert report["results"]["provider socket: documented route"]["reachable"] == "HTTP 200"

        # The control: the same probe, same user, no sandbox. It must read the vault (so the probe can
        # see an escape), and still find the provider and the supervisor closed (non-dumpable).
        control = run_probe(d, state, tgt, control=True)
        leaked = escapes(control)
        assert f"read {d.home / 'vault.db'}" in leaked and f"list {d.home}" in leaked
        closed = [
            name
            for name in control["results"]
            if name.startswith(("provider: ", "supervisor: ")) and not name.endswith(": signal")
        ]
        assert closed and not [n for n in closed if n in leaked], {
            n: leaked[n] for n in closed if n in leaked
        }

        if IS_ROOT:  # the key was handed over on pipes: it is in neither daemon process's environ
            for pid in (status["provider"]["pid"], status["supervisor"]["pid"]):
                assert not provider_environ_holds_key(pid, key_b64)
    finally:
        d.stop()


def test_probe_escapes_an_unconfined_edge(base):
    """The suite can fail: with `--isolation none` the edge (same user) reads the vault and lists the home."""
    user = None
    if IS_ROOT:
        user = ensure_user(TESTER)
        os.chown(base, *user)
    d = Deployment(base, user, {"BOTCTL_MASTER_KEY": masterkey.encode(new_key())})
    try:
        d.run("init")
        d.run("daemon", "start", "--port", str(d.port), "--isolation", "none")
        status = json.loads(d.run("daemon", "status", "--json").stdout)
        state = json.loads((d.home / "run" / "state.json").read_text())
        assert state["isolation"]["mode"] == "none"
        assert "--sandbox" in state["edge"]["argv"] and "none" in state["edge"]["argv"]
        plant_key_files(d, "x")
        tgt = targets(d, status, state, [])
        leaked = escapes(run_probe(d, state, tgt))
        assert f"read {d.home / 'vault.db'}" in leaked and f"write {d.home / 'audit.db'}" in leaked
        shown = d.run("daemon", "status")
        assert (
            "isolation" in shown.stdout and "none" in shown.stdout and "could read the vault" in shown.stderr
        )
        doctor = json.loads(d.run("doctor", "--json", check=False).stdout)
        (finding,) = [f for f in doctor["findings"] if f["check"] == "isolation"]
        assert finding["status"] == "warn" and finding["message"].startswith("none") and finding["fix"]
    finally:
        d.stop()


def unit_exec(name: str) -> list[str]:
    """ExecStart= of one of the shipped systemd units, split into words."""
    import shlex

    lines = (REPO / "daemon" / "systemd" / name).read_text().splitlines()
    return shlex.split(next(ln for ln in lines if ln.startswith("ExecStart=")).split("=", 1)[1])


def replace_arg(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


@pytest.mark.skipif(not IS_ROOT or not landlock_abi(), reason="the units' users need root")
def test_separate_units_edge_reaches_nothing(base):
    """The systemd layout, without systemd: the provider unit's command as its own user (in the edge's
    group), the edge unit's command as the edge user; the edge serves, and the probe reaches nothing."""
    provider_user = ensure_user(TESTER)
    edge_uid, edge_gid = ensure_user("botctl-edge")
    os.chown(base, *provider_user)
    runtime = Path(tempfile.mkdtemp(prefix="botctl-unit-", dir="/run"))  # what RuntimeDirectory= makes
    os.chown(runtime, *provider_user)
    os.chmod(runtime, 0o750)
    sock = runtime / "provider.sock"
    d = Deployment(base, provider_user, {"BOTCTL_MASTER_KEY": masterkey.encode(new_key())})
    provider_cmd = unit_exec("botctl-provider.service")
    assert provider_cmd[1:5] == ["daemon", "start", "--foreground", "--no-edge"]
    provider_args = replace_arg(provider_cmd[4:], "--socket", str(sock))  # from --no-edge on
    edge_cmd = unit_exec("botctl-edge.service")
    assert Path(edge_cmd[0]).name == "botctld" and "--sandbox" in edge_cmd
    edge_args = replace_arg(replace_arg(edge_cmd[1:], "--socket", str(sock)), "--port", str(d.port))
    edge_args = [a if a != "/var/lib/botctl" else str(d.home) for a in edge_args]
    edge = None
    try:
        d.run("init")
        d.run("workspace", "create", "acme", "--plan", "pro")
        as_provider = {"user": provider_user[0], "group": provider_user[1], "extra_groups": [edge_gid]}
        proc = subprocess.run(
            [sys.executable, "-m", "botctl", "daemon", "start", *provider_args],
            env=d.env,
            capture_output=True,
            text=True,
            timeout=60,
            **as_provider,
        )
        assert proc.returncode == 0, proc.stderr
        assert (sock.stat().st_mode & 0o777) == 0o660 and sock.stat().st_gid == edge_gid
        assert (runtime.stat().st_mode & 0o777) == 0o750 and runtime.stat().st_gid == edge_gid
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG")}
        edge = subprocess.Popen(
            [sys.executable, "-P", "-m", "botctld", *edge_args],
            env=env,
            cwd="/",
            user=edge_uid,
            group=edge_gid,
            extra_groups=[],
            stderr=subprocess.PIPE,
        )
        import httpx

        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{d.port}/v1/workspaces/acme/widget-config", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and edge.poll() is None, "the edge did not come up"
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["workspace"] == "acme"
        status = json.loads(d.run("daemon", "status", "--json").stdout)
        assert status["edge"] == {"external": True} and status["isolation"]["mode"] == "external"
        state = {
            "edge": {"argv": ["-P", "-m", "botctld", *edge_args]},
            "socket": str(sock),
            "isolation": {"edge_user": "botctl-edge"},
        }
        plant_key_files(d, d.env["BOTCTL_MASTER_KEY"])
        report = run_probe(d, state, targets(d, status, state, []))
        assert report["uid"] == edge_uid and report["confinement"]["sandbox"] == "landlock"
        assert escapes(report) == {}, escapes(report)
    finally:
        if edge is not None:
            edge.terminate()
            edge.wait(timeout=20)
        d.stop()
        shutil.rmtree(runtime, ignore_errors=True)
