"""The daemon's life cycle: a small supervisor that runs the provider, then the edge, and restarts them.

Files in `<home>/run/` (0700): `daemon.lock` (flock: one daemon per home), `supervisor.pid`,
`state.json` (pids, start times, restarts, address), `provider.sock` (0600), `daemon.log`.

The supervisor and the provider make themselves non-dumpable first (their /proc files become root's,
and no process of the same uid can ptrace them). A master key given in BOTCTL_MASTER_KEY is taken out of
the supervisor's environment at once and handed to each provider through a pipe, never an environment.
The edge is started with a scrubbed environment (no BOTCTL_*, no CREDENTIALS_DIRECTORY), `/` as its
working directory, no inherited file descriptors, under the isolation `botctl.isolation` chose (its
own user when started as root; Landlock otherwise): it can only talk to the provider's socket.

Modules: supervisor (the long-running process), control (start/stop/status for the CLI), files (the
run directory), net (probes), errors; `python -m botctl.daemon` runs the supervisor.
"""

from botctl.daemon.control import Options, start, status, stop, supervisor_for
from botctl.daemon.errors import DaemonError, HomeLocked, PortInUse
from botctl.daemon.files import Paths, read_pid, read_state
from botctl.daemon.net import _uds_get, port_free
from botctl.daemon.supervisor import (
    BACKOFF_MAX_S,
    BACKOFF_START_S,
    EDGE_ENV_KEEP,
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Child,
    Supervisor,
    edge_env,
    no_dumps,
    read_secret_fd,
    take_master_key_from_env,
)

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_START_S",
    "EDGE_ENV_KEEP",
    "READY_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "Child",
    "DaemonError",
    "HomeLocked",
    "Options",
    "Paths",
    "PortInUse",
    "Supervisor",
    "_uds_get",
    "edge_env",
    "no_dumps",
    "port_free",
    "read_pid",
    "read_secret_fd",
    "read_state",
    "start",
    "status",
    "stop",
    "supervisor_for",
    "take_master_key_from_env",
]
