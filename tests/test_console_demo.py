"""The operator's first look, as the issue puts it: `botctl demo --keep`, then `botctl console` on the demo's
home — the demo's timeline is there, a request id a visitor was given finds that request's records, the
chain is intact, the connections are listed, the day's actions and refusals are counted."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from botctl import crypto
from test_console import start_console, stop

pytestmark = pytest.mark.slow


def test_console_on_the_demos_home():
    key = base64.b64encode(crypto.new_key()).decode()
    env = {k: v for k, v in os.environ.items() if k not in ("BOTCTL_HOME", "CI")}
    env["BOTCTL_MASTER_KEY"] = key  # the demo's home stays usable with it afterwards
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", "demo", "--keep"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    home = re.search(r"export BOTCTL_HOME=(\S+)", proc.stdout).group(1)
    sandbox_pid = int(re.search(r"kill (\d+)", proc.stdout).group(1))
    env["BOTCTL_HOME"] = home
    running = None
    try:
        running = start_console(env)
        cookie = running.login()
        page = running.get("/", cookie).text
        for needle in (
            "shopify.list_my_orders",
            "zendesk.create_ticket",
            "zendesk.list_my_tickets",
            "forbidden",
            "invalid_identity",
            "plan_required",
            "connection.refreshed",
        ):
            assert needle in page, needle
        # The visitor who asked for Grace's order was told "not found" and given a reference: it finds the
        # request, and only it.
        refused = [
            json.loads(line)
            for line in subprocess.run(
                [sys.executable, "-m", "botctl", "audit", "--json", "-n", "1000", "--outcome", "denied"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.splitlines()
        ]
        grace = next(r for r in refused if r["reason"] == "forbidden")
        rows = running.get(f"/api/records?after=0&request_id={grace['request_id']}", cookie).json()["rows"]
        assert rows and {r["request_id"] for r in rows} == {grace["request_id"]}
        assert grace["seq"] in {r["seq"] for r in rows}
        assert running.get("/api/verify", cookie).json()["state"] == "intact"
        connections = running.get("/connections", cookie).text
        for connector in ("stripe", "zendesk", "shopify", "calendly"):
            assert f'<th scope="row">{connector}</th>' in connections
        acme = next(
            w
            for w in running.get("/api/activity?days=7", cookie).json()["workspaces"]
            if w["workspace"] == "acme"
        )
        assert acme["actions"][-1] > 0 and acme["refusals"][-1] > 0
    finally:
        if running is not None:
            stop(running)
        subprocess.run(
            [sys.executable, "-m", "botctl", "daemon", "stop"], env=env, capture_output=True, timeout=60
        )
        try:
            os.kill(sandbox_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        shutil.rmtree(Path(home).parent, ignore_errors=True)  # the demo's temporary folder
