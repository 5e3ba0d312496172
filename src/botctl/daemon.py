"""The daemon's life cycle: a small supervisor that runs the provider, then the edge, and restarts them.

Files in `<home>/run/` (0700): `daemon.lock` (flock: one daemon per home), `supervisor.pid`,
`state.json` (pids, start times, restarts, address), `provider.sock` (0600), `daemon.log`.

The supervisor and the provider make themselves non-dumpable first (their /proc files become root's,
and no process of the same uid can ptrace them). A master key given in BOTCTL_MASTER_KEY is taken out of
the supervisor's environment at once and handed to each provider through a pipe, never an environment.
The edge is started with a scrubbed environment (no BOTCTL_*, no CREDENTIALS_DIRECTORY), `/` as its
working directory, no inherited file descriptors, under the isolation `botctl.isolation` chose (its
own user when started as root; Landlock otherwise): it can only talk to the provider's socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botctl import isolation as isolation_mod
from botctl.errors import BotctlError
from botctl.home import Home
from botctl.isolation import Isolation

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 60.0
EDGE_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")


class DaemonError(BotctlError):
    code = "daemon"


class HomeLocked(BotctlError):
    code = "home_locked"
    exit_code = 4


class PortInUse(BotctlError):
    code = "port_in_use"
    exit_code = 4


@dataclass
class Paths:
    home: Home

    @property
    def run(self) -> Path:
        return self.home.run_dir

    @property
    def lock(self) -> Path:
        return self.run / "daemon.lock"

    @property
    def pid(self) -> Path:
        return self.run / "supervisor.pid"

    @property
    def state(self) -> Path:
        return self.run / "state.json"

    @property
    def socket(self) -> Path:
        return self.run / "provider.sock"

    @property
    def log(self) -> Path:
        return self.run / "daemon.log"

    def ensure(self) -> None:
        self.home.ensure()
        self.run.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.run, 0o700)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(paths: Paths) -> int | None:
    try:
        pid = int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def read_state(paths: Paths) -> dict[str, Any]:
    try:
        return json.loads(paths.state.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


# -- the supervisor ----------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_START_S
    next_start: float = 0.0
    history: list[float] = field(default_factory=list)
    ready: bool = False  # came up (provider: answered /health; edge: accepts connections on its port)

    user: tuple[int, int] | None = None  # (uid, gid) to run as: the edge under uid isolation
    secret: bytes | None = None  # handed over on a pipe whose read end is the child's `--master-key-fd`

    def start(self, log_fd: int) -> None:
        argv, pass_fds, read_fd = list(self.argv), (), None
        if self.secret is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, self.secret)  # a few bytes: fits the pipe's buffer, never blocks
            os.close(write_fd)
            argv += ["--master-key-fd", str(read_fd)]
            pass_fds = (read_fd,)
        as_user = {"user": self.user[0], "group": self.user[1], "extra_groups": []} if self.user else {}
        try:
            self.proc = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log_fd,
                                         stderr=log_fd, close_fds=True, pass_fds=pass_fds, start_new_session=False,
                                         **as_user)
        finally:
            if read_fd is not None:
                os.close(read_fd)
        self.started = time.time()
        self.ready = False

    def info(self) -> dict[str, Any]:
        return {"pid": self.proc.pid if self.proc and self.proc.poll() is None else None, "started": self.started,
                "restarts": self.restarts, "argv": self.argv[1:]}


def edge_env() -> dict[str, str]:
    """The edge's whole environment: enough to run Python, nothing of botctl's."""
    return {k: v for k, v in os.environ.items() if k in EDGE_ENV_KEEP}


def take_master_key_from_env() -> bytes | None:
    """Remove BOTCTL_MASTER_KEY from this process's environment (children never inherit it) and return it."""
    value = os.environ.pop("BOTCTL_MASTER_KEY", None)
    return value.encode() if value else None


class Supervisor:
    def __init__(self, home: Home, host: str, port: int, *, refresh_interval: float = 30.0,
                 ip_rate: float = 20.0, visitor_rate: float = 5.0, edge_options: list[str] | None = None,
                 isolation: Isolation | None = None,
                 socket_path: Path | None = None, socket_group: int | None = None, edge: bool = True,
                 master_key: bytes | None = None) -> None:
        self.paths = Paths(home)
        self.host, self.port = host, port
        self.stopping = False
        self.isolation = isolation or Isolation("none", 0)
        if socket_path is None and self.isolation.separate_uid:
            socket_path = isolation_mod.runtime_socket(home.path)
        self.socket = socket_path or self.paths.socket
        if socket_group is None and self.isolation.separate_uid:
            socket_group = self.isolation.gid
        self.socket_group = socket_group
        py = sys.executable
        sock = str(self.socket)
        provider_env = dict(os.environ)
        provider_env["BOTCTL_HOME"] = str(home.path)
        provider_env.pop("BOTCTL_MASTER_KEY", None)
        self.provider = Child("provider", [py, "-m", "botctl.provider", "--home", str(home.path), "--socket", sock,
                                           "--refresh-interval", str(refresh_interval)]
                              + (["--socket-group", str(socket_group)] if socket_group is not None else []),
                              provider_env, str(home.path), secret=master_key)
        deny = [str(home.path)] + [d for d in (os.environ.get("CREDENTIALS_DIRECTORY"),) if d]
        self.edge: Child | None = None
        if edge:
            self.edge = Child("edge", [py, "-P", "-m", "botctld", "--socket", sock, "--host", host, "--port", str(port),
                                       "--ip-rate", str(ip_rate), "--visitor-rate", str(visitor_rate),
                                       *(edge_options or []),
                                       "--sandbox", "landlock" if self.isolation.landlock else "none",
                                       *[a for d in deny for a in ("--deny", d)]],
                              edge_env(), "/",
                              user=(self.isolation.uid, self.isolation.gid) if self.isolation.separate_uid else None)
        self._lock_fd: int | None = None
        self._log_fd: int | None = None

    @property
    def children(self) -> tuple[Child, ...]:
        return (self.provider, self.edge) if self.edge else (self.provider,)

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} supervisor {message}\n"
        if self._log_fd is not None:
            os.write(self._log_fd, line.encode())

    def lock(self) -> None:
        import fcntl

        self.paths.ensure()
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HomeLocked(f"another botctl daemon is running for {self.paths.home.path} (pid {read_pid(self.paths)}).",
                             hint="Stop it with `botctl daemon stop`, or use another --home.") from None
        self._lock_fd = fd

    def save_state(self, **extra: Any) -> None:
        isolation = self.isolation.summary() if self.edge else {"mode": "external", "edge_user": None,
                                                                   "meaning": isolation_mod.describe("external")}
        _write_json(self.paths.state, {"version": _version(), "supervisor_pid": os.getpid(), "host": self.host,
                                       "port": self.port, "socket": str(self.socket), "started": self.started,
                                       "isolation": isolation, "provider": self.provider.info(),
                                       "edge": self.edge.info() if self.edge else {"external": True}, **extra})

    def _wait_provider(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.provider.proc is None or self.provider.proc.poll() is not None:
                return False
            if self.socket.exists() and _uds_get(self.socket, "/health") is not None:
                self.provider.ready = True
                return True
            time.sleep(0.05)
        return False

    def run(self) -> int:
        no_dumps()
        self.lock()
        self.started = time.time()
        self._log_fd = os.open(self.paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.paths.pid.write_text(str(os.getpid()))
        os.chmod(self.paths.pid, 0o600)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.log(f"starting (pid {os.getpid()}) on {self.host}:{self.port}")
        if self.socket_group is not None:
            isolation_mod.prepare_socket_dir(self.socket, self.socket_group)
        if self.socket.exists():
            self.socket.unlink()
        self.provider.start(self._log_fd)
        if not self._wait_provider():
            self.log("provider failed to start")
            self._terminate(self.provider)
            self.save_state(error="provider failed to start; see `botctl daemon logs`")
            self._cleanup(keep_state=True)
            return 1
        if self.edge:
            self.edge.start(self._log_fd)
            self.log(f"edge pid {self.edge.proc.pid}, isolation {self.isolation.mode}"  # type: ignore[union-attr]
                     + (f" (user {self.isolation.edge_user})" if self.isolation.edge_user else ""))
        else:
            self.log("no edge here: it runs elsewhere and reaches the provider's socket")
        self.save_state()
        self.log(f"provider pid {self.provider.proc.pid}")  # type: ignore[union-attr]
        while not self.stopping:
            for child in self.children:
                self._watch(child)
            time.sleep(0.1)
        self.log("stopping: edge first (finishes in-flight requests), then provider (commits the audit log)")
        if self.edge:
            self._terminate(self.edge)
        self._terminate(self.provider)
        self._cleanup()
        self.log("stopped")
        return 0

    def _watch(self, child: Child) -> None:
        now = time.time()
        if child.proc is not None and child.proc.poll() is None:
            if child is self.edge and not child.ready:
                child.ready = _listening(self.host, self.port)
            if now - child.started > HEALTHY_RESET_S:
                child.backoff = BACKOFF_START_S
            return
        if child.proc is not None:  # it died: schedule a restart with backoff
            code = child.proc.returncode
            child.proc = None
            if child.ready:
                # It had come up and died later (killed, OOM): restart promptly. The backoff is for a
                # child that keeps dying before it comes up, not one that was serving.
                child.backoff = BACKOFF_START_S
            child.next_start = now + child.backoff
            self.log(f"{child.name} exited with {code}; restarting in {child.backoff:.1f}s")
            child.backoff = min(BACKOFF_MAX_S, child.backoff * 2)
            self.save_state()
            return
        if now >= child.next_start and not self.stopping:
            child.restarts += 1
            child.start(self._log_fd)  # type: ignore[arg-type]
            if child is self.provider and not self._wait_provider():
                self.log("provider failed to come back")
            self.log(f"{child.name} restarted (pid {child.proc.pid}, restart #{child.restarts})")  # type: ignore[union-attr]
            self.save_state()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def _terminate(self, child: Child) -> None:
        proc = child.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S / 2)
        except subprocess.TimeoutExpired:
            self.log(f"{child.name} did not stop in time; killing it")
            proc.kill()
            proc.wait()

    def _cleanup(self, *, keep_state: bool = False) -> None:
        for p in (self.paths.pid, self.socket) + (() if keep_state else (self.paths.state,)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        if self.socket.parent.parent == isolation_mod.RUNTIME_ROOT and self.isolation.separate_uid:
            try:
                self.socket.parent.rmdir()  # this home's folder under /run/botctl
            except OSError:
                pass


def no_dumps() -> None:
    from botctld.confine import no_dumps as apply

    apply()


def _version() -> str:
    from botctl import __version__

    return __version__


def _listening(host: str, port: int) -> bool:
    """Whether host:port accepts TCP connections (the edge is up once it does)."""
    import ipaddress

    try:  # a wildcard bind address is reached through loopback
        wildcard = host == "" or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    target = ("::1" if ":" in host else "127.0.0.1") if wildcard else host
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def _uds_get(sock: Path, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """A tiny HTTP/1.1 GET over the Unix socket (no httpx: the supervisor stays light)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: provider\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
    except OSError:
        return None
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    try:
        return json.loads(body)
    except ValueError:
        return None


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return out


# -- commands ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What `botctl daemon start` was asked for (the supervisor process gets the same on its command line)."""

    host: str = "127.0.0.1"
    port: int = 8765
    ip_rate: float = 20.0
    visitor_rate: float = 5.0
    isolation: str = "auto"
    edge_user: str = isolation_mod.DEFAULT_EDGE_USER
    edge: bool = True  # False: provider only, the edge runs in its own unit or on another host
    socket: str | None = None
    socket_group: str | None = None
    trust_proxy: int = 0
    trust_proxy_cidrs: tuple[str, ...] = ()
    metrics_port: int | None = None

    def edge_options(self) -> list[str]:
        """The edge's own options beyond address and rates (passed through to botctld as they are)."""
        out = ["--trust-proxy", str(self.trust_proxy)] if self.trust_proxy else []
        out += [a for c in self.trust_proxy_cidrs for a in ("--trust-proxy-cidr", c)]
        out += ["--metrics-port", str(self.metrics_port)] if self.metrics_port is not None else []
        return out

    def argv(self) -> list[str]:
        out = ["--host", self.host, "--port", str(self.port), "--ip-rate", str(self.ip_rate),
               "--visitor-rate", str(self.visitor_rate), "--isolation", self.isolation, "--edge-user", self.edge_user,
               *self.edge_options()]
        out += [] if self.edge else ["--no-edge"]
        out += ["--socket", self.socket] if self.socket else []
        out += ["--socket-group", self.socket_group] if self.socket_group else []
        return out


def _group_id(name: str | None) -> int | None:
    if name is None:
        return None
    import grp

    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise DaemonError(f"no group named {name!r}.", hint="Create it (groupadd --system NAME) or name another.") from None


def _check_edge_options(opts: Options) -> None:
    """Refuse here what the edge would refuse at start (in the background, where nobody reads it)."""
    import ipaddress

    if opts.trust_proxy < 0:
        raise DaemonError("--trust-proxy takes the number of proxies in front of the edge (0 or more).")
    for cidr in opts.trust_proxy_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise DaemonError(f"--trust-proxy-cidr {cidr!r} is not a network.", hint="For example 10.0.0.0/8 or ::1/128.") from None
    if opts.metrics_port is not None and opts.edge and not port_free("127.0.0.1", opts.metrics_port):
        raise PortInUse(f"127.0.0.1:{opts.metrics_port} (--metrics-port) is already in use.")


def supervisor_for(home: Home, opts: Options, *, check: bool, master_key: bytes | None) -> Supervisor:
    iso = (isolation_mod.prepare(opts.isolation, opts.edge_user, sys.executable, edge_env(), check=check)
           if opts.edge else Isolation("none", 0))
    return Supervisor(home, opts.host, opts.port, ip_rate=opts.ip_rate, visitor_rate=opts.visitor_rate,
                      edge_options=opts.edge_options(), isolation=iso,
                      socket_path=Path(opts.socket) if opts.socket else None,
                      socket_group=_group_id(opts.socket_group), edge=opts.edge, master_key=master_key)


def start(home: Home, opts: Options, *, foreground: bool, wait: float = READY_TIMEOUT_S) -> dict[str, Any]:
    from botctl.vault import Vault

    no_dumps()  # this process reads the master key too (and, in the foreground, becomes the supervisor)

    paths = Paths(home)
    running = read_pid(paths)
    if running:
        st = read_state(paths)
        return {"already_running": True, "pid": running, "host": st.get("host"), "port": st.get("port")}
    # Fail here, in the user's terminal, rather than in a background process: key, home and isolation must work.
    with Vault.open(home, create=False):
        pass
    if opts.edge and not port_free(opts.host, opts.port):
        raise PortInUse(f"{opts.host}:{opts.port} is already in use.",
                        hint="Choose another with --port, or stop what holds it.")
    _check_edge_options(opts)
    if _group_id(opts.socket_group) is not None and Path(opts.socket or paths.socket).parent == paths.run:
        raise DaemonError("--socket-group needs --socket outside the home (the home is closed to every group).",
                          hint="For example --socket /run/botctl/provider.sock (systemd: RuntimeDirectory=botctl).")
    if opts.edge:
        isolation_mod.prepare(opts.isolation, opts.edge_user, sys.executable, edge_env(), check=True)
    paths.ensure()
    for stale in (paths.pid, paths.socket):
        if stale.exists() and not running:
            stale.unlink()
    master_key = take_master_key_from_env()
    if foreground:
        code = supervisor_for(home, opts, check=False, master_key=master_key).run()
        return {"foreground": True, "exit": code}
    log_fd = os.open(paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    argv = [sys.executable, "-m", "botctl.daemon", "--home", str(home.path), *opts.argv()]
    pass_fds: tuple[int, ...] = ()
    if master_key is not None:
        read_fd, write_fd = os.pipe()
        os.write(write_fd, master_key)
        os.close(write_fd)
        argv += ["--master-key-fd", str(read_fd)]
        pass_fds = (read_fd,)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, start_new_session=True,
                                close_fds=True, pass_fds=pass_fds, env={**os.environ, "BOTCTL_HOME": str(home.path)})
    finally:
        os.close(log_fd)
        for fd in pass_fds:
            os.close(fd)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonError(f"the daemon failed to start: {_last_log_line(paths)}",
                              hint="See `botctl daemon logs`.")
        st = read_state(paths)
        if opts.edge:
            ready = bool(st.get("edge", {}).get("pid")) and _http_ok(opts.host, opts.port, "/readyz")
        else:
            ready = bool(st.get("provider", {}).get("pid")) and _uds_get(Path(st["socket"]), "/health") is not None
        if ready:
            return {"started": True, "pid": proc.pid, "host": opts.host, "port": opts.port,
                    "provider_pid": st["provider"]["pid"], "edge_pid": st["edge"].get("pid"),
                    "isolation": st.get("isolation")}
        time.sleep(0.05)
    raise DaemonError("the daemon did not become ready in time.", hint="See `botctl daemon logs`.")


def stop(home: Home, timeout: float = STOP_TIMEOUT_S) -> dict[str, Any]:
    paths = Paths(home)
    pid = read_pid(paths)
    if pid is None:
        for stale in (paths.pid, paths.socket, paths.state):
            if stale.exists():
                stale.unlink()
        return {"stopped": False, "was_running": False}
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        raise DaemonError(f"the daemon (pid {pid}) did not stop within {timeout:.0f}s.",
                          hint=f"Check `botctl daemon logs`; as a last resort: kill {pid}")
    return {"stopped": True, "was_running": True, "pid": pid}


def status(home: Home) -> dict[str, Any]:
    paths = Paths(home)
    pid = read_pid(paths)
    st = read_state(paths)
    now = time.time()
    out: dict[str, Any] = {"running": pid is not None, "version": _version(), "home": str(home.path)}
    if pid is None:
        if st.get("error"):
            out["last_error"] = st["error"]
        return out
    out["supervisor"] = {"pid": pid, "uptime_s": round(now - st.get("started", now), 1)}
    for name in ("provider", "edge"):
        c = st.get(name, {})
        out[name] = {"pid": c.get("pid") if _alive(c.get("pid")) else None, "restarts": c.get("restarts", 0),
                     "uptime_s": round(now - c["started"], 1) if c.get("started") else None}
    out["provider"]["socket"] = st.get("socket")
    if st.get("edge", {}).get("external"):
        out["edge"] = {"external": True}
    else:
        out["edge"]["address"] = f"http://{st.get('host')}:{st.get('port')}"
    out["isolation"] = st.get("isolation")
    detail = _uds_get(Path(st.get("socket") or paths.socket), "/v1/status")
    out["connections_needing_reauth"] = (detail or {}).get("connections_needing_reauth")
    audit = (detail or {}).get("audit") or {}
    out["audit_chain"] = {"chain": audit.get("chain"), "problem": audit.get("problem"),
                          "refused": audit.get("refused")} if audit.get("chain") else None
    out["provider"]["reachable"] = detail is not None
    return out


def _http_ok(host: str, port: int, path: str) -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection(host, port, timeout=1.0)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _last_log_line(paths: Paths) -> str:
    try:
        lines = [ln for ln in paths.log.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "no log"
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()[-300:]
    return lines[-1].strip()[-300:] if lines else "no log"


def main() -> None:
    import argparse

    no_dumps()
    parser = argparse.ArgumentParser(prog="botctl-supervisor")
    parser.add_argument("--home", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ip-rate", type=float, default=20.0)
    parser.add_argument("--visitor-rate", type=float, default=5.0)
    parser.add_argument("--isolation", default="auto", choices=isolation_mod.CHOICES)
    parser.add_argument("--edge-user", default=isolation_mod.DEFAULT_EDGE_USER)
    parser.add_argument("--no-edge", action="store_true")
    parser.add_argument("--socket")
    parser.add_argument("--socket-group")
    parser.add_argument("--master-key-fd", type=int)
    parser.add_argument("--trust-proxy", type=int, default=0)
    parser.add_argument("--trust-proxy-cidr", action="append", default=[])
    parser.add_argument("--metrics-port", type=int)
    args = parser.parse_args()
    os.umask(0o077)
    master_key = take_master_key_from_env()
    if args.master_key_fd is not None:
        master_key = read_secret_fd(args.master_key_fd)
    opts = Options(host=args.host, port=args.port, ip_rate=args.ip_rate, visitor_rate=args.visitor_rate,
                   isolation=args.isolation, edge_user=args.edge_user, edge=not args.no_edge, socket=args.socket,
                   socket_group=args.socket_group, trust_proxy=args.trust_proxy,
                   trust_proxy_cidrs=tuple(args.trust_proxy_cidr), metrics_port=args.metrics_port)
    try:
        sys.exit(supervisor_for(Home.resolve(args.home), opts, check=False, master_key=master_key).run())
    except BotctlError as exc:
        sys.stderr.write(f"supervisor: {exc.message}\n")
        sys.exit(exc.exit_code)


def read_secret_fd(fd: int) -> bytes:
    """Read a pipe to its end and close it (how a master key reaches the supervisor and the provider)."""
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).strip()


if __name__ == "__main__":
    main()
