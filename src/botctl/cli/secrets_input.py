"""Reading a secret the only ways botctl allows: hidden prompt, stdin, or an environment variable.

Never from an argument: argv is visible to every user on the machine (`ps`) and lands in shell history.
"""

import os
import sys

from botctl.errors import UsageError
from botctl.secret import Secret

_stdin_lines: list[str] | None = None


def _stdin_line(index: int) -> str | None:
    global _stdin_lines
    if _stdin_lines is None:
        _stdin_lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    return _stdin_lines[index] if index < len(_stdin_lines) else None


def reset() -> None:
    global _stdin_lines
    _stdin_lines = None


def read(
    label: str,
    *,
    flag: str,
    from_stdin: bool,
    env_var: str | None,
    stdin_index: int = 0,
    required: bool = True,
) -> Secret | None:
    if env_var:
        value = os.environ.get(env_var, "").strip()
        if not value:
            raise UsageError(
                f"environment variable {env_var} is empty or not set.",
                hint=f"Export it first, e.g. read -rs {env_var} && export {env_var}",
            )
        return Secret(value)
    if from_stdin:
        value = _stdin_line(stdin_index)
        if not value:
            raise UsageError(
                f"no {label} on standard input (line {stdin_index + 1}).",
                hint=f"Pipe it in: printf '%s\\n' \"$KEY\" | botctl ... {flag}-stdin",
            )
        return Secret(value)
    if sys.stdin.isatty() and sys.stderr.isatty():
        import getpass

        value = getpass.getpass(f"{label}: ").strip()
        if not value:
            raise UsageError(f"no {label} given.")
        return Secret(value)
    if not required:
        return None
    raise UsageError(
        f"no {label} given and no terminal to ask in.",
        hint=f"Use {flag}-stdin or {flag}-env VAR (never an argument).",
    )
