"""The `sandbox` fixture: one sandbox server per test session, reset before every test.

Self-contained on purpose so it can move to tests/conftest.py unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from botctl.sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[RunningSandbox]:
    with running_sandbox() as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_server: RunningSandbox) -> RunningSandbox:
    """A running sandbox in its seeded state (data, credentials, no faults, default config, zero stats)."""
    sandbox_server.reset()
    return sandbox_server
