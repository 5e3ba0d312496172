"""Fixtures of the browser tests: one Stack (daemon + example site) and one Chromium per test module, a
fresh Page per test (see browser_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_harness import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, Page, Stack


@pytest.fixture(scope="module")
def stack(sandbox_server, tmp_path_factory) -> Iterator[Stack]:
    sandbox_server.reset()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s = None
    try:
        s = Stack(tmp_path_factory.mktemp("browser"), sandbox_server)
        yield s
    finally:
        if s is not None:
            s.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright import sync_api

    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture
def page(browser, stack) -> Iterator[Page]:
    p = Page(browser, stack)
    try:
        yield p
    finally:
        p.close()
