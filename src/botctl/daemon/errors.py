"""The daemon's own errors (stable codes; HomeLocked and PortInUse exit 4)."""

from __future__ import annotations

from botctl.errors import BotctlError


class DaemonError(BotctlError):
    code = "daemon"


class HomeLocked(BotctlError):
    code = "home_locked"
    exit_code = 4


class PortInUse(BotctlError):
    code = "port_in_use"
    exit_code = 4
