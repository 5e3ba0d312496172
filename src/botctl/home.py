"""Where botctl keeps its state: `--home`, then `BOTCTL_HOME`, then platformdirs' user data dir.

The home is 0700 and every file in it 0600; nothing else in it is ever world- or group-readable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VAULT_DB = "vault.db"
AUDIT_DB = "audit.db"
MASTER_KEY_FILE = "master.key"
RUN_DIR = "run"
DATABASE_URL_FILE = "database.url"


def default_home() -> Path:
    env = os.environ.get("BOTCTL_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs  # 20-40 ms: only when no home was given

    return Path(platformdirs.user_data_dir("botctl", appauthor=False))


@dataclass(frozen=True)
class Home:
    path: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        path = Path(explicit).expanduser() if explicit else default_home()
        return cls(path.absolute())

    @property
    def vault_db(self) -> Path:
        return self.path / VAULT_DB

    @property
    def audit_db(self) -> Path:
        return self.path / AUDIT_DB

    @property
    def master_key_file(self) -> Path:
        return self.path / MASTER_KEY_FILE

    @property
    def run_dir(self) -> Path:
        return self.path / RUN_DIR

    @property
    def database_url_file(self) -> Path:
        """Present when the home's database is PostgreSQL (botctl/database.py): its URL, never a password."""
        return self.path / DATABASE_URL_FILE

    def exists(self) -> bool:
        if self.vault_db.exists() or self.database_url_file.exists():
            return True
        # BOTCTL_DATABASE_URL names the database for any initialised home (its master key stays here).
        return bool(os.environ.get("BOTCTL_DATABASE_URL", "").startswith("postgres")) and self.path.is_dir()

    def ensure(self) -> Path:
        """Create the home (0700) if needed and tighten its mode if someone loosened it."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (self.path.stat().st_mode & 0o777) != 0o700:
            os.chmod(self.path, 0o700)
        return self.path


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists (then only tighten the mode)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        if (path.stat().st_mode & 0o777) != 0o600:
            os.chmod(path, 0o600)


def write_private_file(path: Path, data: bytes) -> None:
    """Write atomically (temp file + rename) with mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
