"""`--secrets-out FILE`: where new HS256 secrets are merged (JSON object, mode 0600), never through a link."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any


def read_secrets_file(path: Path) -> str:
    """An existing secrets file's text, never through a symbolic link (one planted in a checkout could
    point at another file, whose content would be merged into the output)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        return f.read()


def check_secrets_out(path: Path) -> str | None:
    """What is wrong with `path` as the secrets file, checked before anything changes; None when it will do."""
    if path.is_symlink():
        return "is a symbolic link; give the path of a regular file (or of one to create)."
    if path.exists():
        if not path.is_file():
            return "exists but is not a regular file."
        try:
            existing = json.loads(read_secrets_file(path) or "{}")
        except (OSError, ValueError) as exc:
            return f"exists but is not readable JSON ({exc.__class__.__name__})."
        if not isinstance(existing, dict):
            return "exists but is not a JSON object."
        if not os.access(path, os.W_OK):
            return "is not writable."
    elif not path.parent.is_dir():
        return f"folder {path.parent} does not exist."
    return None


def write_secret(path: Path, workspace: str, entry: dict[str, str]) -> None:
    """Merge one workspace's new secret into the secrets file (JSON object, mode 0600)."""
    existing: dict[str, Any] = {}
    if path.exists() or path.is_symlink():
        existing = json.loads(read_secrets_file(path) or "{}")
    existing.setdefault(workspace, {}).update(entry)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(existing, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
