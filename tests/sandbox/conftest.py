"""Fixtures for tests against the vendor sandbox.

`sandbox` and `sandbox_server` live in tests/conftest.py (shared with the connector and CLI tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from botctl.sandbox.testing import RunningSandbox


@pytest.fixture
def creds(sandbox: RunningSandbox) -> dict[str, Any]:
    return sandbox.credentials()


@pytest.fixture
def seed(sandbox: RunningSandbox) -> dict[str, Any]:
    return sandbox.seed()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client
