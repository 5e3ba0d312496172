"""One autouse fixture isolates every test: a temp home, no keyring, no inherited key, plain output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from botctl.home import Home

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("BOTCTL_HOME", str(home))
    monkeypatch.setenv("BOTCTL_NO_KEYRING", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    # Knowledge retrieval is FTS5 alone unless a test turns the embedding model on (tests/test_knowledge_hybrid.py
    # does): embedding every test's corpus would cost minutes.
    monkeypatch.setenv("BOTCTL_KNOWLEDGE_DENSE", "0")
    for var in ("BOTCTL_MASTER_KEY", "CREDENTIALS_DIRECTORY", "CI", "BOTCTL_DEBUG", "BOTCTL_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    yield home


@pytest.fixture
def home(isolated) -> Home:
    return Home(isolated)


@pytest.fixture
def app(home):
    """An open App on the test's home (closed afterwards)."""
    from botctl.app import App

    a = App(home)
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
            [sys.executable, "-m", "botctl", *args], input=input, capture_output=True, text=True,
            env={**os.environ, **(env or {})}, timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return invoke
