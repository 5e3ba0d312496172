"""What `apply` raises: an invalid file, a host nobody allowed, a deletion nobody confirmed (all exit 2)."""

from __future__ import annotations

import re
from typing import Any

from botctl.errors import UsageError

EXIT_PARTIAL = 7  # some objects failed, the rest were applied


class ProvisionError(UsageError):
    """The file is invalid (exit 2); every problem found, each as FILE:LINE: key: message."""

    code = "invalid_provision_file"

    def __init__(
        self,
        problems: list[str],
        *,
        hint: str = "Fix the file and apply again; nothing was changed.",
        code: str | None = None,
    ) -> None:
        head = (
            problems[0]
            if len(problems) == 1
            else f"{len(problems)} problems in the file:\n  " + "\n  ".join(problems)
        )
        super().__init__(head, hint=hint, code=code)
        self.problems = problems


class HostNotAllowed(ProvisionError):
    """The file would send a credential to a host the connector does not fix, and nobody allowed it (exit 2)."""

    code = "host_not_allowed"


class ConfirmationRequired(UsageError):
    """--prune would destroy something and neither --yes nor a terminal confirmed it (exit 2)."""

    code = "confirmation_required"


_WHERE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<key>[A-Za-z0-9_.\[\]-]+): (?P<message>.*)$", re.S)


def problem_fields(problem: str) -> dict[str, Any]:
    """One problem as CI annotates it: {file, line, key, message} (line and key null when not about a key)."""
    m = _WHERE.match(problem)
    if m:
        return {"file": m["file"], "line": int(m["line"]), "key": m["key"], "message": m["message"]}
    file, sep, message = problem.partition(": ")
    if sep and not file.startswith("-") and " " not in file.strip():
        return {"file": file, "line": None, "key": None, "message": message}
    return {"file": None, "line": None, "key": None, "message": problem}
