"""How the daemon keeps the edge away from the keys: which isolation a start gets, and what it needs.

| started as | `--isolation auto` gives | the edge runs as | it can reach |
|---|---|---|---|
| root | `uid+landlock` (`uid` where the kernel lacks Landlock) | its own system user (`botctl-edge`) | the provider's socket in `/run/botctl/<id>/` (group-shared, 0660); nothing in the home |
| an ordinary user | `landlock` | the same user, confined by Landlock | the socket; on the filesystem only the Python installation, read-only |
| an ordinary user, no Landlock | `none` (said in `daemon status` and `doctor`) | the same user | whatever that user can reach |

As root the edge never runs as root: `--isolation landlock` or `none` are refused there. The systemd
units (daemon/systemd/) put the edge in its own unit and user instead (`daemon start --no-edge`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botctl.errors import BotctlError, UsageError

DEFAULT_EDGE_USER = "botctl-edge"
RUNTIME_ROOT = Path("/run/botctl")
CHOICES = ("auto", "uid", "landlock", "none")


class IsolationError(BotctlError):
    code = "isolation_unavailable"
    exit_code = 4


@dataclass(frozen=True)
class Isolation:
    mode: str  # "uid+landlock" | "uid" | "landlock" | "none"
    landlock_abi: int
    edge_user: str | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def separate_uid(self) -> bool:
        return self.uid is not None

    @property
    def landlock(self) -> bool:
        return "landlock" in self.mode

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "edge_user": self.edge_user,
            "landlock_abi": self.landlock_abi,
            "meaning": describe(self.mode),
        }


def describe(mode: str) -> str:
    return {
        "uid+landlock": "the edge runs as its own user and is confined by Landlock: it cannot read the home or the key",
        "uid": "the edge runs as its own user: it cannot read the home or the key (no Landlock on this kernel)",
        "landlock": "the edge is confined by Landlock: it cannot read the home or the key, nor signal the provider",
        "none": "the edge runs as the provider's user unconfined: code running in it could read the vault and the key",
        "external": "the edge runs elsewhere (its own unit or host) and reaches only the provider's socket",
    }.get(mode, mode)


def landlock_abi() -> int:
    from botctld.confine import landlock_abi as abi

    return abi()


def plan(requested: str = "auto", edge_user: str = DEFAULT_EDGE_USER) -> Isolation:
    """Decide the isolation for this start (no side effects; `prepare` creates what it needs)."""
    if requested not in CHOICES:
        raise UsageError(f"--isolation must be one of {', '.join(CHOICES)}, not {requested!r}.")
    root = os.geteuid() == 0
    abi = landlock_abi()
    if root:
        if requested in ("landlock", "none"):
            raise UsageError(
                f"--isolation {requested} would run the edge as root.",
                hint=f"As root the edge runs as its own user: use --isolation auto (or uid), "
                f"with --edge-user NAME to choose it (default {DEFAULT_EDGE_USER}).",
            )
        return Isolation("uid+landlock" if abi else "uid", abi, edge_user=edge_user)
    if requested == "uid":
        raise IsolationError(
            "--isolation uid needs root: only root can start the edge as another user.",
            hint="Run `botctl daemon start` as root, use the systemd units, or use --isolation landlock.",
        )
    if requested == "landlock" and not abi:
        raise IsolationError(
            "this kernel has no Landlock (Linux 5.13 or newer, enabled at boot).",
            hint="Start the daemon as root (the edge then runs as its own user), or use the systemd units.",
        )
    if requested == "none" or not abi:
        return Isolation("none", abi)
    return Isolation("landlock", abi)


def ensure_user(name: str) -> tuple[int, int]:
    """The edge user's (uid, gid): an existing user, or a new system user with no home and no shell."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "botctl edge (visitor-facing, holds nothing)",
                name,
            ],
            capture_output=True,
            text=True,
        )
        try:  # another daemon may have created it meanwhile
            entry = pwd.getpwnam(name)
        except KeyError:
            raise IsolationError(
                f"cannot create the edge user {name!r}: {proc.stderr.strip() or 'useradd failed'}",
                hint=f"Create it yourself (useradd --system {name}) or name one with --edge-user.",
            ) from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise IsolationError(
            f"the edge user {name!r} is root or in group root.",
            hint="Name an unprivileged user with --edge-user.",
        )
    return entry.pw_uid, entry.pw_gid


def runtime_socket(home_path: Path) -> Path:
    """Where the provider listens when the edge is another user: outside the 0700 home, per home."""
    digest = hashlib.sha256(str(home_path).encode()).hexdigest()[:16]
    return RUNTIME_ROOT / digest / "provider.sock"


def prepare_socket_dir(socket: Path, gid: int) -> None:
    """A folder only the provider's user writes and the edge's group may enter: 0750, group gid.

    The per-home folder under /run/botctl (root's layout), or the unit's RuntimeDirectory (systemd)."""
    folder = socket.parent
    if folder.parent == RUNTIME_ROOT:
        RUNTIME_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        if RUNTIME_ROOT.stat().st_uid == os.geteuid():
            os.chmod(RUNTIME_ROOT, 0o755)  # noqa: S103 - only folders in it; each home's is 0750 to its edge's group
    folder.mkdir(mode=0o750, exist_ok=True)
    st = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.geteuid():
        raise IsolationError(f"{folder} is not a folder of this user's.", hint=f"Remove it: rm -r {folder}")
    os.chown(folder, -1, gid)
    os.chmod(folder, 0o750)  # noqa: S103 - the edge's group must enter it to reach the socket


def prepare(
    requested: str, edge_user: str, python: str, edge_env: dict[str, str], *, check: bool = True
) -> Isolation:
    """`plan` plus what it needs: the edge user (created as root if missing) and, with `check`, proof that
    this user can run the edge (an interpreter under /root, say, it could not)."""
    iso = plan(requested, edge_user)
    if not iso.mode.startswith("uid"):
        return iso
    uid, gid = ensure_user(edge_user)
    iso = Isolation(iso.mode, iso.landlock_abi, edge_user=edge_user, uid=uid, gid=gid)
    if not check:
        return iso
    proc = subprocess.run(
        [python, "-P", "-c", "import botctld.__main__"],
        user=uid,
        group=gid,
        extra_groups=[],
        env=edge_env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status " + str(proc.returncode)])[-1]
        raise IsolationError(
            f"the edge user {edge_user!r} cannot run {python}: {last}",
            hint="Install botctl where every user can read it (e.g. a venv made from /usr/bin/python3 "
            "under /opt), or start the daemon as an ordinary user (Landlock).",
        )
    return iso
