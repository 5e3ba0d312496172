"""The edge confines itself before it serves a single request: Landlock, no new privileges, no dumps.

After `confine()` the edge process can, on the filesystem, only read (and execute) the Python
installation and its own package (the widget's static files); it cannot open, list, create or write
anything else — not the botctl home, not the vault, not the audit log, not a key file, not /proc.
With Landlock ABI 4 or newer it can neither bind nor connect a TCP socket (it already holds its
listening socket, taken before confinement), except, for an edge on its own host, connect to the one
port of its remote provider (`connect_ports`; the mutual-TLS link, botctld.remote); with ABI 6 or newer it can send no signal to, and reach
no abstract Unix socket of, a process outside its sandbox (the provider, the supervisor).

What Landlock does not govern: connecting to a path-named Unix socket (the edge needs exactly one,
the provider's, whose routes are the edge's whole interface), UDP, and anything the uid allows that
is not a filesystem, TCP or signal operation. Running the edge as its own user (the supervisor does
that when started as root, the systemd units always) closes the rest of the uid's reach.

Linux only; the three Landlock system calls are made through ctypes (no compiled extension). This
module imports nothing from botctl: the edge stays independent of the code that holds the keys.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

# System call numbers are the same on every architecture Linux added them to (x86_64, arm64, ...).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2

PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights, by the ABI version that introduced them.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

# Shared libraries an extension module may load late (an interpreter outside /usr links against these).
SYSTEM_LIBRARIES = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache")

READ_ONLY_DIR = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
READ_ONLY_FILE = FS_EXECUTE | FS_READ_FILE


class ConfinementError(Exception):
    """Confinement was required and could not be applied; the edge must not serve."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    return libc


def _prctl(option: int, value: int) -> None:
    if (
        _libc().prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def no_dumps() -> None:
    """Make this process non-dumpable: its /proc files (environ, mem, maps) become root's, and a process
    of the same uid can no longer ptrace it. Harmless where unsupported."""
    if sys.platform.startswith("linux"):
        try:
            _prctl(PR_SET_DUMPABLE, 0)
        except OSError:
            pass


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is missing or disabled at boot."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        abi = _libc().syscall(
            SYS_LANDLOCK_CREATE_RULESET,
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION),
        )
    except (OSError, AttributeError):
        return 0
    return int(abi) if abi > 0 else 0


def _fs_rights(abi: int) -> int:
    rights = FS_ABI1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def _overlaps(path: Path, other: Path) -> bool:
    return path == other or path in other.parents or other in path.parents


def read_roots(deny: list[str]) -> tuple[list[Path], list[Path]]:
    """What the edge keeps reading after confinement: the interpreter's prefixes and every import root.

    Returns (allowed, refused): a candidate is refused when it contains, or lies inside, a denied path
    (the home, the key's folder): an import root that happens to contain the home must not open it.
    """
    denied = [Path(os.path.realpath(d)) for d in deny if d]
    candidates = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        *sys.path,
        str(Path(__file__).resolve().parent),
        *SYSTEM_LIBRARIES,
    ]
    allowed: list[Path] = []
    refused: list[Path] = []
    for cand in candidates:
        if not cand:
            continue  # '' is the working directory: never an import root of the edge (python -P)
        path = Path(os.path.realpath(cand))
        if not path.exists() or path in allowed or path in refused:
            continue
        if path == Path("/") or any(_overlaps(path, d) for d in denied):
            refused.append(path)
            continue
        allowed.append(path)
    return allowed, refused


def confine(*, deny: list[str], required: bool, connect_ports: tuple[int, ...] = ()) -> dict[str, object]:
    """Apply the sandbox to this process (and every thread and child it will have). Irreversible.

    `required`: raise ConfinementError where Landlock is unavailable instead of running unconfined.
    `connect_ports`: TCP ports the process may still connect to (a remote provider's), Landlock ABI 4+.
    Returns what was applied, for the log and `botctl daemon status`.
    """
    no_dumps()
    abi = landlock_abi()
    if abi <= 0:
        if required:
            raise ConfinementError("this kernel has no Landlock (Linux 5.13 or newer, enabled at boot)")
        return {"landlock": False, "abi": 0}
    allowed, refused = read_roots(deny)
    libc = _libc()
    attr = _RulesetAttr(
        handled_access_fs=_fs_rights(abi),
        handled_access_net=(NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
        scoped=(SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0,
    )
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        raise ConfinementError(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:
        for path in allowed:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(
                    allowed_access=READ_ONLY_DIR if path.is_dir() else READ_ONLY_FILE, parent_fd=fd
                )
                if (
                    libc.syscall(
                        SYS_LANDLOCK_ADD_RULE,
                        ctypes.c_int(ruleset),
                        ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                        ctypes.byref(rule),
                        ctypes.c_uint32(0),
                    )
                    != 0
                ):
                    raise ConfinementError(
                        f"landlock_add_rule({path}) failed: {os.strerror(ctypes.get_errno())}"
                    )
            finally:
                os.close(fd)
        for port in connect_ports if abi >= 4 else ():
            net = _NetPortAttr(allowed_access=NET_CONNECT_TCP, port=port)
            if (
                libc.syscall(
                    SYS_LANDLOCK_ADD_RULE,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(LANDLOCK_RULE_NET_PORT),
                    ctypes.byref(net),
                    ctypes.c_uint32(0),
                )
                != 0
            ):
                raise ConfinementError(
                    f"landlock_add_rule(port {port}) failed: {os.strerror(ctypes.get_errno())}"
                )
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise ConfinementError(f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(ruleset)
    return {
        "landlock": True,
        "abi": abi,
        "read_only": [str(p) for p in allowed],
        "refused_roots": [str(p) for p in refused],
        "tcp": (
            "not restricted"
            if abi < 4
            else f"connect to port {', '.join(map(str, connect_ports))} only"
            if connect_ports
            else "none"
        ),
        "signals_and_abstract_sockets": "own sandbox only" if abi >= 6 else "not restricted",
    }
