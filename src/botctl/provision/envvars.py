"""Secrets in the file are only ever names of environment variables: which names are refused, and
how a literal secret (or one pasted where a name belongs) is found before anything else is looked at."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from botctl.secret import Secret

Path_ = tuple[str | int, ...]  # a key path in the file: ("workspaces", "acme", "identity", "public_keys", 0)

# A key that names a secret; `*_env` (the variable holding it) does not match.
LITERAL_SECRET = re.compile(r"(?:^|_)(?:api_?key|api_?secret|secret|token|password|passwd|passphrase)$", re.I)
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Environment variables botctl itself reads (README "Configuration", the systemd credential folder, the
# CI switch, test hooks) or that hold a local database password: a file may never route one of them to
# a vendor. Every BOTCTL_* name is reserved too, including ones added later.
RESERVED_ENV = frozenset(
    {
        "BOTCTL_HOME",
        "BOTCTL_MASTER_KEY",
        "BOTCTL_NO_KEYRING",
        "BOTCTL_WORKSPACE",
        "BOTCTL_SANDBOX",
        "BOTCTL_LLM_URL",
        "BOTCTL_LLM_MODEL",
        "BOTCTL_LLM_API_KEY",
        "BOTCTL_LLM_TIMEOUT",
        "BOTCTL_DEBUG",
        "BOTCTL_QUIET",
        "BOTCTL_FAILPOINTS",
        "BOTCTL_HOST",
        "BOTCTL_PORT",
        "_BOTCTL_COMPLETE",
        "CREDENTIALS_DIRECTORY",
        "CI",
        "PGPASSWORD",
        "PGPASSFILE",
        "NO_COLOR",
        "TERM",
    }
)
_RESERVED_PREFIXES = ("BOTCTL_", "_BOTCTL_")

NOT_A_NAME = (
    "is not an environment variable name (A-Z, 0-9, _): it looks like a literal secret, which is not "
    "allowed in the file (the value is not shown); put it in an environment variable and name that here."
)
RESERVED = (
    "{var} is botctl's own variable (or a local password), never a connection's secret; name the variable "
    "that holds the vendor's secret."
)


def reserved_env(name: str) -> bool:
    """True for a variable botctl reads itself (or a local database password): never a connection's secret."""
    return name in RESERVED_ENV or name.startswith(_RESERVED_PREFIXES)


@dataclass
class EnvRef:
    """A `*_env` whose name passed the checks; its value is read only once the whole file is accepted."""

    var: str
    path: Path_
    secret: Secret | None = None

    def read(self) -> bool:
        """Read the variable (stripped); False when it is empty or not set."""
        value = os.environ.get(self.var, "").strip()
        self.secret = Secret(value) if value else None
        return self.secret is not None


def literal_secrets(value: Any, path: Path_ = ()) -> tuple[list[Path_], list[Path_]]:
    """Keys that hold a secret itself, and `*_env` keys whose value is not a variable name (most likely
    the secret pasted in place of the name)."""
    literal: list[Path_] = []
    pasted: list[Path_] = []
    _scan(value, path, literal, pasted)
    return literal, pasted


def _scan(value: Any, path: Path_, literal: list[Path_], pasted: list[Path_]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and LITERAL_SECRET.search(k):
                literal.append(path + (k,))
            elif k.endswith("_env") and isinstance(v, str) and not ENV_NAME.fullmatch(v):
                pasted.append(path + (k,))
            else:
                _scan(v, path + (k,), literal, pasted)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _scan(v, path + (i,), literal, pasted)
