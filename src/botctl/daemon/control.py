"""`botctl daemon start|stop|status`: what the CLI asks of the daemon, checked in the user's terminal
before anything runs in the background."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botctl import isolation as isolation_mod
from botctl.daemon.errors import DaemonError, PortInUse
from botctl.daemon.files import Paths, _alive, read_pid, read_state
from botctl.daemon.net import _http_ok, _uds_get, port_free
from botctl.daemon.supervisor import (
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Supervisor,
    _version,
    edge_env,
    no_dumps,
    take_master_key_from_env,
)
from botctl.home import Home
from botctl.isolation import Isolation


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
    provider_listen: str | None = (
        None  # HOST:PORT: the provider also listens on TCP, mutual TLS (remote edges)
    )

    def edge_options(self) -> list[str]:
        """The edge's own options beyond address and rates (passed through to botctld as they are)."""
        out = ["--trust-proxy", str(self.trust_proxy)] if self.trust_proxy else []
        out += [a for c in self.trust_proxy_cidrs for a in ("--trust-proxy-cidr", c)]
        out += ["--metrics-port", str(self.metrics_port)] if self.metrics_port is not None else []
        return out

    def argv(self) -> list[str]:
        out = [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ip-rate",
            str(self.ip_rate),
            "--visitor-rate",
            str(self.visitor_rate),
            "--isolation",
            self.isolation,
            "--edge-user",
            self.edge_user,
            *self.edge_options(),
        ]
        out += [] if self.edge else ["--no-edge"]
        out += ["--socket", self.socket] if self.socket else []
        out += ["--socket-group", self.socket_group] if self.socket_group else []
        out += ["--provider-listen", self.provider_listen] if self.provider_listen else []
        return out


def _group_id(name: str | None) -> int | None:
    if name is None:
        return None
    import grp

    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise DaemonError(
            f"no group named {name!r}.", hint="Create it (groupadd --system NAME) or name another."
        ) from None


def _check_edge_options(opts: Options) -> None:
    """Refuse here what the edge would refuse at start (in the background, where nobody reads it)."""
    import ipaddress

    if opts.trust_proxy < 0:
        raise DaemonError("--trust-proxy takes the number of proxies in front of the edge (0 or more).")
    for cidr in opts.trust_proxy_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise DaemonError(
                f"--trust-proxy-cidr {cidr!r} is not a network.", hint="For example 10.0.0.0/8 or ::1/128."
            ) from None
    if opts.metrics_port is not None and opts.edge and not port_free("127.0.0.1", opts.metrics_port):
        raise PortInUse(f"127.0.0.1:{opts.metrics_port} (--metrics-port) is already in use.")


def _check_provider_listen(home: Home, listen: str) -> None:
    """`--provider-listen HOST:PORT`: an address, a free port, and the provider's certificate in the home."""
    from botctl.cluster import pki

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DaemonError(
            f"--provider-listen {listen!r} is not HOST:PORT.",
            code="invalid_provider_listen",
            hint="For example 10.0.0.5:8766 (the address the edge hosts reach), or 0.0.0.0:8766.",
        )
    pki.server_files(home.path)
    if not port_free(host.strip("[]"), int(port)):
        raise PortInUse(f"{listen} (--provider-listen) is already in use.")


def supervisor_for(home: Home, opts: Options, *, check: bool, master_key: bytes | None) -> Supervisor:
    iso = (
        isolation_mod.prepare(opts.isolation, opts.edge_user, sys.executable, edge_env(), check=check)
        if opts.edge
        else Isolation("none", 0)
    )
    return Supervisor(
        home,
        opts.host,
        opts.port,
        ip_rate=opts.ip_rate,
        visitor_rate=opts.visitor_rate,
        edge_options=opts.edge_options(),
        isolation=iso,
        socket_path=Path(opts.socket) if opts.socket else None,
        socket_group=_group_id(opts.socket_group),
        edge=opts.edge,
        master_key=master_key,
        provider_listen=opts.provider_listen,
    )


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
        raise PortInUse(
            f"{opts.host}:{opts.port} is already in use.",
            hint="Choose another with --port, or stop what holds it.",
        )
    _check_edge_options(opts)
    if opts.provider_listen:
        _check_provider_listen(home, opts.provider_listen)
    if _group_id(opts.socket_group) is not None and Path(opts.socket or paths.socket).parent == paths.run:
        raise DaemonError(
            "--socket-group needs --socket outside the home (the home is closed to every group).",
            hint="For example --socket /run/botctl/provider.sock (systemd: RuntimeDirectory=botctl).",
        )
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
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
            env={**os.environ, "BOTCTL_HOME": str(home.path)},
        )
    finally:
        os.close(log_fd)
        for fd in pass_fds:
            os.close(fd)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonError(
                f"the daemon failed to start: {_last_log_line(paths)}", hint="See `botctl daemon logs`."
            )
        st = read_state(paths)
        if opts.edge:
            ready = bool(st.get("edge", {}).get("pid")) and _http_ok(opts.host, opts.port, "/readyz")
        else:
            ready = (
                bool(st.get("provider", {}).get("pid"))
                and _uds_get(Path(st["socket"]), "/health") is not None
            )
        if ready:
            return {
                "started": True,
                "pid": proc.pid,
                "host": opts.host,
                "port": opts.port,
                "provider_pid": st["provider"]["pid"],
                "edge_pid": st["edge"].get("pid"),
                "isolation": st.get("isolation"),
            }
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
        raise DaemonError(
            f"the daemon (pid {pid}) did not stop within {timeout:.0f}s.",
            hint=f"Check `botctl daemon logs`; as a last resort: kill {pid}",
        )
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
        out[name] = {
            "pid": c.get("pid") if _alive(c.get("pid")) else None,
            "restarts": c.get("restarts", 0),
            "uptime_s": round(now - c["started"], 1) if c.get("started") else None,
        }
    out["provider"]["socket"] = st.get("socket")
    out["provider"]["listen_tls"] = st.get("provider_listen")  # remote edges' mutual-TLS address, or None
    if st.get("edge", {}).get("external"):
        out["edge"] = {"external": True}
    else:
        out["edge"]["address"] = f"http://{st.get('host')}:{st.get('port')}"
    out["isolation"] = st.get("isolation")
    detail = _uds_get(Path(st.get("socket") or paths.socket), "/v1/status")
    out["connections_needing_reauth"] = (detail or {}).get("connections_needing_reauth")
    audit = (detail or {}).get("audit") or {}
    out["audit_chain"] = (
        {
            "chain": audit.get("chain"),
            "problem": audit.get("problem"),
            "refused": audit.get("refused"),
            "last_verify": audit.get("last_verify"),
        }
        if audit.get("chain")
        else None
    )
    try:
        from botctl.audit import alerting

        out["recent_alerts"] = [
            {"type": e["type"], "created_at": e["created_at"], "summary": e["summary"]}
            for e in alerting.recent(home)
        ]
    except Exception as exc:  # status answers whatever state shipping.db is in
        out["recent_alerts"] = [
            {"type": "unknown", "summary": f"cannot read shipping.db ({type(exc).__name__})"}
        ]
    out["audit_sinks"] = (detail or {}).get("audit_sinks")
    out["alert_webhooks"] = (detail or {}).get("alert_webhooks")
    out["provider"]["reachable"] = detail is not None
    return out


def _last_log_line(paths: Paths) -> str:
    try:
        lines = [ln for ln in paths.log.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "no log"
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()[-300:]
    return lines[-1].strip()[-300:] if lines else "no log"
