"""The daemon's files in `<home>/run/` (0700): `daemon.lock`, `supervisor.pid`, `state.json`,
`provider.sock` (0600; elsewhere when the edge is another user), `daemon.log`; and whether a pid lives."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botctl.home import Home


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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


# -- the supervisor ----------------------------------------------------------------------------------
