"""The supervisor: runs the provider, then the edge, and restarts either when it dies.

It makes itself non-dumpable first; a master key given in BOTCTL_MASTER_KEY is taken out of its
environment at once and handed to each provider through a pipe. The edge is started with a scrubbed
environment, `/` as its working directory, no inherited descriptors, under the isolation
`botctl.isolation` chose (its own user as root; Landlock otherwise).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botctl import isolation as isolation_mod
from botctl.daemon.errors import HomeLocked
from botctl.daemon.files import Paths, _write_json, read_pid
from botctl.daemon.net import _listening, _uds_get
from botctl.home import Home
from botctl.isolation import Isolation

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 60.0
EDGE_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")


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
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                close_fds=True,
                pass_fds=pass_fds,
                start_new_session=False,
                **as_user,
            )
        finally:
            if read_fd is not None:
                os.close(read_fd)
        self.started = time.time()
        self.ready = False

    def info(self) -> dict[str, Any]:
        return {
            "pid": self.proc.pid if self.proc and self.proc.poll() is None else None,
            "started": self.started,
            "restarts": self.restarts,
            "argv": self.argv[1:],
        }


def edge_env() -> dict[str, str]:
    """The edge's whole environment: enough to run Python, nothing of botctl's."""
    return {k: v for k, v in os.environ.items() if k in EDGE_ENV_KEEP}


def take_master_key_from_env() -> bytes | None:
    """Remove BOTCTL_MASTER_KEY from this process's environment (children never inherit it) and return it."""
    value = os.environ.pop("BOTCTL_MASTER_KEY", None)
    return value.encode() if value else None


class Supervisor:
    def __init__(
        self,
        home: Home,
        host: str,
        port: int,
        *,
        refresh_interval: float = 30.0,
        ip_rate: float = 20.0,
        visitor_rate: float = 5.0,
        edge_options: list[str] | None = None,
        isolation: Isolation | None = None,
        socket_path: Path | None = None,
        socket_group: int | None = None,
        edge: bool = True,
        master_key: bytes | None = None,
        provider_listen: str | None = None,
    ) -> None:
        self.paths = Paths(home)
        self.home = home
        self.host, self.port = host, port
        self.stopping = False
        self.isolation = isolation or Isolation("none", 0)
        if socket_path is None and self.isolation.separate_uid:
            socket_path = isolation_mod.runtime_socket(home.path)
        self.socket = socket_path or self.paths.socket
        self.provider_listen = (
            provider_listen  # HOST:PORT of the mutual-TLS listener for remote edges, if any
        )
        if socket_group is None and self.isolation.separate_uid:
            socket_group = self.isolation.gid
        self.socket_group = socket_group
        py = sys.executable
        sock = str(self.socket)
        provider_env = dict(os.environ)
        provider_env["BOTCTL_HOME"] = str(home.path)
        provider_env.pop("BOTCTL_MASTER_KEY", None)
        self.provider = Child(
            "provider",
            [
                py,
                "-m",
                "botctl.provider",
                "--home",
                str(home.path),
                "--socket",
                sock,
                "--refresh-interval",
                str(refresh_interval),
            ]
            + (["--socket-group", str(socket_group)] if socket_group is not None else [])
            + (["--listen-tls", provider_listen] if provider_listen else []),
            provider_env,
            str(home.path),
            secret=master_key,
        )
        deny = [str(home.path)] + [d for d in (os.environ.get("CREDENTIALS_DIRECTORY"),) if d]
        self.edge: Child | None = None
        if edge:
            self.edge = Child(
                "edge",
                [
                    py,
                    "-P",
                    "-m",
                    "botctld",
                    "--socket",
                    sock,
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--ip-rate",
                    str(ip_rate),
                    "--visitor-rate",
                    str(visitor_rate),
                    *(edge_options or []),
                    "--sandbox",
                    "landlock" if self.isolation.landlock else "none",
                    *[a for d in deny for a in ("--deny", d)],
                ],
                edge_env(),
                "/",
                user=(self.isolation.uid, self.isolation.gid) if self.isolation.separate_uid else None,
            )
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
            raise HomeLocked(
                f"another botctl daemon is running for {self.paths.home.path} (pid {read_pid(self.paths)}).",
                hint="Stop it with `botctl daemon stop`, or use another --home.",
            ) from None
        self._lock_fd = fd

    def save_state(self, **extra: Any) -> None:
        isolation = (
            self.isolation.summary()
            if self.edge
            else {"mode": "external", "edge_user": None, "meaning": isolation_mod.describe("external")}
        )
        _write_json(
            self.paths.state,
            {
                "version": _version(),
                "supervisor_pid": os.getpid(),
                "host": self.host,
                "port": self.port,
                "socket": str(self.socket),
                "started": self.started,
                "provider_listen": self.provider_listen,
                "isolation": isolation,
                "provider": self.provider.info(),
                "edge": self.edge.info() if self.edge else {"external": True},
                **extra,
            },
        )

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
            self.log(
                f"edge pid {self.edge.proc.pid}, isolation {self.isolation.mode}"  # type: ignore[union-attr]
                + (f" (user {self.isolation.edge_user})" if self.isolation.edge_user else "")
            )
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
            if child is self.provider:
                self._alert_restart(code, child)
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

    def _alert_restart(self, code: int | None, child: Child) -> None:
        """The `provider.restarted` alert (docs/alerts.md); the provider that comes back delivers it."""
        try:
            from botctl.audit import alerting

            alerting.raise_now(
                self.home,
                "provider.restarted",
                {
                    "exit_code": code,
                    "restarts": child.restarts + 1,
                    "restart_in_s": round(child.backoff, 1),
                    "log": "botctl daemon logs",
                },
            )
        except Exception as exc:  # an alert must never stop the supervision it reports on
            self.log(f"could not raise the provider.restarted alert: {type(exc).__name__}")

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


def read_secret_fd(fd: int) -> bytes:
    """Read a pipe to its end and close it (how a master key reaches the supervisor and the provider)."""
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).strip()
