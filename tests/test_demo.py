"""`botctl demo` (the README's first command) runs end to end and finishes well under 30 s."""

import os
import subprocess
import sys
import time

import pytest


@pytest.mark.slow
def test_demo_runs_clean():
    env = {k: v for k, v in os.environ.items() if k not in ("BOTCTL_HOME", "BOTCTL_MASTER_KEY")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", "demo"], env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = proc.stdout
    for needle in (
        "cited: shipping.md",
        "identity_required",
        "forbidden",
        "invalid_identity",
        "plan_required",
        "zendesk.create_ticket",
        "calcom.book_meeting",
        "1 refresh_token grant",
        "confirmation_required:",
        "action.confirmation_requested",
        "the bot reads the outcome: confirmed, ok",
        "audit verify: intact",
        "demo finished",
    ):
        assert needle in out, needle
    assert "UNEXPECTED" not in out
    assert elapsed < 60  # 30 s on a quiet machine; CI shares its two cores with the other tests' leftovers
