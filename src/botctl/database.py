"""Which database a home uses: SQLite files in the home (the default) or a PostgreSQL server.

The choice is the home's `database.url` file (written by `botctl init --database URL` or `botctl db copy
--switch`), or `BOTCTL_DATABASE_URL`, which wins when set. A stored URL never holds a password: it names
where the password is instead, in one of the ways libpq itself knows (a `passfile=PATH` parameter,
`PGPASSFILE`, `~/.pgpass`), or as `credential=NAME`: the systemd credential `NAME` (read from
`$CREDENTIALS_DIRECTORY`, as `LoadCredential=` provides it). `BOTCTL_DATABASE_URL` may carry a password,
like `BOTCTL_MASTER_KEY` carries the key: an environment variable is not written to disk.

Nothing here imports the PostgreSQL driver: a SQLite home's start-up stays as it was.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from botctl.errors import UsageError

ENV = "BOTCTL_DATABASE_URL"
SCHEMES = ("postgresql", "postgres")


def url_file(home_path: Path) -> Path:
    from botctl.home import DATABASE_URL_FILE

    return home_path / DATABASE_URL_FILE


def configured(home_path: Path) -> str | None:
    """The PostgreSQL URL this home uses, or None for SQLite."""
    env = os.environ.get(ENV, "").strip()
    if env:
        if env.startswith("sqlite:"):
            return None
        check(env, stored=False)
        return env
    try:
        text = url_file(home_path).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in SCHEMES  # type: ignore[arg-type]


def check(url: str, *, stored: bool) -> str:
    """A usable PostgreSQL URL, or a UsageError saying what is wrong. `stored`: it will be written to the
    home, so it must not carry a password."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UsageError(
            f"unsupported database URL scheme {parts.scheme or '(none)'!r}.",
            hint="Use postgresql://USER@HOST:PORT/DBNAME (SQLite is the default: give no --database).",
        )
    if not parts.path.strip("/"):
        raise UsageError(
            "the database URL names no database.", hint="Use postgresql://USER@HOST:PORT/DBNAME."
        )
    if stored and parts.password is not None:
        raise UsageError(
            "the database URL holds a password, and it would be stored in the home in plain text.",
            hint="Put the password in a libpq password file (?passfile=PATH, PGPASSFILE or ~/.pgpass), name a "
            "systemd credential (?credential=NAME), or set BOTCTL_DATABASE_URL instead of storing it.",
        )
    query = dict(parse_qsl(parts.query))
    if stored and "password" in query:
        raise UsageError(
            "the database URL holds a password parameter, and it would be stored in plain text.",
            hint="Use ?passfile=PATH or ?credential=NAME instead.",
        )
    name = query.get("credential")
    if name is not None and (not name or "/" in name or name.startswith(".")):
        raise UsageError(
            f"credential={name!r} is not a systemd credential name.",
            hint="Give the name LoadCredential= uses, e.g. credential=botctl-db-password.",
        )
    return url


def save(home_path: Path, url: str) -> None:
    from botctl.home import write_private_file

    write_private_file(url_file(home_path), (check(url, stored=True) + "\n").encode())


def redacted(url: str) -> str:
    """The URL as shown to people: no password, whatever it came with."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/:"), ""))


def libpq_conninfo(url: str) -> tuple[str, dict[str, str]]:
    """The URL libpq is given (botctl's own `credential` parameter taken out) and extra keyword arguments
    (the password read from the systemd credential, if one is named)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    extra: dict[str, str] = {}
    kept = []
    for k, v in query:
        if k == "credential":
            extra["password"] = _read_credential(v)
        else:
            kept.append((k, v))
    clean = urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode(kept, quote_via=quote, safe="/"), "")
    )
    return clean, extra


def _read_credential(name: str) -> str:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise UsageError(
            f"the database URL names the systemd credential {name!r}, but CREDENTIALS_DIRECTORY is not set.",
            hint=f"Run under systemd with LoadCredential={name}:PATH, or use passfile=PATH.",
        )
    try:
        return (Path(directory) / name).read_text().strip()
    except OSError as exc:
        raise UsageError(
            f"cannot read the systemd credential {name!r}: {exc.strerror}.",
            hint="Check the unit's LoadCredential= line.",
        ) from None


def database_name(url: str) -> str:
    return urlsplit(url).path.strip("/")
