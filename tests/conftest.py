"""One autouse fixture isolates every test: a temp home, no keyring, no inherited key, plain output."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from botctl.home import Home

REPO = Path(__file__).resolve().parent.parent

# A test run started in the background (`make test &`, nohup) inherits SIGINT ignored, and every botctl the
# tests start would inherit that too: the Ctrl-C tests (`audit -f`, `mcp serve`, the daemon in the
# foreground) would wait for an exit that never comes. A handler here is reset to the default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# BOTCTL_TEST_DATABASE=postgresql runs every test with its home's tables in PostgreSQL (the server at
# 127.0.0.1:5432, user postgres): each test gets a fresh database, dropped afterwards. `make test` runs the
# storage-facing tests this way after the whole suite on SQLite (Makefile: PG_TESTS).
TEST_DATABASE = os.environ.get("BOTCTL_TEST_DATABASE", "sqlite")
PG_ADMIN_URL = os.environ.get("BOTCTL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_pg_database():
    """A new, empty, uniquely named PostgreSQL database; its URL. Dropped (connections and all) afterwards."""
    name = _ready().get(timeout=120)
    if isinstance(name, BaseException):
        raise name
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _drops.put(name)


# CREATE DATABASE takes 0.3-1.5 s on a busy machine and DROP DATABASE waits for a checkpoint: one thread keeps
# two fresh databases ready and another drops the used ones while the next tests run; the session waits for
# the last drop (and drops what was made and never used) before it ends.
_drops: queue.Queue = queue.Queue()
_fresh: queue.Queue = queue.Queue(maxsize=2)
_threads: list[threading.Thread] = []
_stop = threading.Event()


def _ready() -> queue.Queue:
    if not _threads:
        for target, name in ((_create_loop, "create-test-databases"), (_drop_loop, "drop-test-databases")):
            _threads.append(threading.Thread(target=target, name=name, daemon=True))
            _threads[-1].start()
    return _fresh


def _create_loop() -> None:
    import secrets

    import psycopg

    while not _stop.is_set():
        name = f"botctl_test_{secrets.token_hex(6)}"
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
        except BaseException as exc:  # the test that takes it fails with the reason
            _fresh.put(exc)
            return
        while not _stop.is_set():
            try:
                _fresh.put(name, timeout=0.2)
                break
            except queue.Full:
                continue
        else:
            _drops.put(name)


def _drop_loop() -> None:
    import psycopg

    while True:
        name = _drops.get()
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception:
            pass
        finally:
            _drops.task_done()


def pytest_sessionfinish(session, exitstatus):
    if _threads:
        _stop.set()
        _threads[0].join(timeout=60)  # the creator: stopped, its last database handed to the dropper
        while not _fresh.empty():  # the ones made ahead and never used
            item = _fresh.get()
            if isinstance(item, str):
                _drops.put(item)
        _drops.join()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, request):
    home = tmp_path / "home"
    monkeypatch.setenv("BOTCTL_HOME", str(home))
    monkeypatch.setenv("BOTCTL_NO_KEYRING", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    # Knowledge retrieval is FTS5 alone unless a test turns the embedding model on (tests/test_knowledge_hybrid.py
    # does): embedding every test's corpus would cost minutes.
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "0")
    for var in (
        "BOTCTL_MASTER_KEY",
        "CREDENTIALS_DIRECTORY",
        "CI",
        "BOTCTL_DEBUG",
        "BOTCTL_WORKSPACE",
        "BOTCTL_DATABASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    # Tests marked sqlite_only, and those that make their own database (pg_url), keep their own choice.
    if (
        TEST_DATABASE == "postgresql"
        and "sqlite_only" not in request.keywords
        and "pg_url" not in request.fixturenames
    ):
        with fresh_pg_database() as url:
            monkeypatch.setenv("BOTCTL_DATABASE_URL", url)
            yield home
        return
    yield home


@pytest.fixture(scope="session")
def pg_database():
    """`fresh_pg_database` for a module-scoped fixture (`with pg_database() as url:`). A test module cannot
    `from conftest import ...`: with tests/connectors and tests/sandbox collected first, the name
    `conftest` is theirs."""
    return fresh_pg_database


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for tests that use PostgreSQL whatever BOTCTL_TEST_DATABASE says."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def home(isolated) -> Home:
    return Home(isolated)


@pytest.fixture
def app(home):
    """An open Session on the test's home (closed afterwards)."""
    from botctl.session import Session

    a = Session(home)
    yield a
    a.close()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def ndjson(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run botctl in this process (fast); returns exit code, stdout, stderr."""
    from botctl.cli.main import run

    def invoke(*args: str, input: str | None = None) -> Result:
        capsys.readouterr()
        old_stdin = sys.stdin
        if input is not None:
            import io

            sys.stdin = io.StringIO(input)
        try:
            run(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin = old_stdin
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def sandbox_server():
    """One vendor sandbox (real HTTP on 127.0.0.1, ephemeral port) for the whole test session."""
    from botctl.sandbox.testing import running_sandbox

    with running_sandbox() as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_server):
    """The sandbox in its seeded state: data, credentials, no faults, default config, zero stats."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def botctl_proc():
    """Run botctl as a real subprocess, with the test's environment."""

    def invoke(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 60) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "botctl", *args],
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return invoke
