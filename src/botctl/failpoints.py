"""Test-only failpoints: make a process die or be interrupted at a named step of a protocol.

``BOTCTL_FAILPOINTS="rotate.committed=kill,rotate.audited=interrupt"``: at ``hit("rotate.committed")``
the process kills itself with SIGKILL (a crash: no cleanup, no flush), at ``hit("rotate.audited")``
it raises KeyboardInterrupt (a Ctrl-C). Unset (always, outside the crash tests), ``hit`` returns at
once. The variable is read once, at import; this module imports nothing but ``os``, so it costs the
CLI's start-up nothing. The names in use are listed in docs/architecture.md ("Master-key rotation").
"""

from __future__ import annotations

import os


def _parse(spec: str) -> dict[str, str]:
    actions: dict[str, str] = {}
    for item in spec.split(","):
        name, sep, action = item.strip().partition("=")
        if sep and name and action.strip() in ("kill", "interrupt"):
            actions[name.strip()] = action.strip()
    return actions


_ACTIONS: dict[str, str] = (
    _parse(os.environ["BOTCTL_FAILPOINTS"]) if os.environ.get("BOTCTL_FAILPOINTS") else {}
)


def hit(name: str) -> None:
    """Act if the environment named this failpoint; otherwise do nothing."""
    if not _ACTIONS:
        return
    action = _ACTIONS.get(name)
    if action == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "interrupt":
        raise KeyboardInterrupt(f"failpoint {name}")
