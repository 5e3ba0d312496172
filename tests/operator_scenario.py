"""A scripted operator's day, shared by the metrics test and the console's browser test: the vendor
sandbox (auto-approving OAuth consent), a home with workspace acme (stripe by API key, zendesk by OAuth
with PKCE through botctl's loopback listener), the real daemon with its metrics listener, and visitors'
actions over the edge — including a zendesk token expired by the vendor (refreshed after the 401) and
then its refresh token too (the refresh fails, the connection falls to needs_reauth)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt

from botctl import crypto
from cluster_kit import free_port


def botctl(*args: str, env: dict[str, str], input: str | None = None, check: bool = True):
    proc = subprocess.run(
        [sys.executable, "-m", "botctl", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=90,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"botctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Scenario:
    def __init__(
        self,
        home: Path,
        env: dict[str, str],
        sandbox_url: str,
        port: int,
        metrics_port: int,
        secret: str,
        kid: str,
        shipped: Path,
    ) -> None:
        self.home, self.env, self.sandbox_url, self.shipped = home, env, sandbox_url, shipped
        self.edge = f"http://127.0.0.1:{port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.secret, self.kid = secret, kid
        self.http = httpx.Client(base_url=self.edge, timeout=60)

    def token(self, sub: str = "u-ada", email: str = "ada@example.com") -> str:
        now = int(time.time())
        return jwt.encode(
            {"sub": sub, "email": email, "name": sub, "aud": "acme", "iat": now, "exp": now + 600},
            self.secret,
            algorithm="HS256",
            headers={"kid": self.kid},
        )

    def act(self, action: str, params: dict | None = None, *, as_ada: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"} if as_ada else {}
        return self.http.post(
            f"/v1/workspaces/acme/actions/{action}", json={"params": params or {}}, headers=headers
        )

    def expire_zendesk(self, *, refresh_tokens: bool = False) -> None:
        r = httpx.post(
            self.sandbox_url + "/_sandbox/oauth/expire",
            json={"vendor": "zendesk", "refresh_tokens": refresh_tokens},
            timeout=10,
        )
        assert r.status_code == 200, r.text

    def metrics(self) -> str:
        r = httpx.get(self.metrics_url, timeout=30)
        assert r.status_code == 200, r.text
        return r.text

    def audit(self, *args: str) -> list[dict]:
        out = botctl("audit", "--json", "-n", "100000", *args, env=self.env).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def play_the_day(self) -> dict[str, str]:
        """The visitors' actions; returns the request ids worth looking up, by what happened."""
        ids = {}
        r = self.act("stripe.list_my_invoices")
        assert r.status_code == 200, r.text
        ids["invoices"] = r.json()["request_id"]
        assert self.act("stripe.list_my_invoices").status_code == 200
        r = self.act("stripe.cancel_my_subscription", {"subscription_id": "sub_GraceSub000001"})  # Grace's
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        ids["refused"] = r.json()["request_id"]
        assert self.act("zendesk.list_my_tickets").status_code == 200
        self.expire_zendesk()  # the vendor expires the access token: 401, refresh, retry
        r = self.act("zendesk.list_my_tickets")
        assert r.status_code == 200, r.text
        ids["retried"] = r.json()["request_id"]
        self.expire_zendesk(refresh_tokens=True)  # and now the grant itself: the refresh fails
        r = self.act("zendesk.list_my_tickets")
        assert r.status_code == 409 and r.json()["error"]["code"] == "needs_reauth", r.text
        ids["needs_reauth"] = r.json()["request_id"]
        return ids


@contextmanager
def running_scenario(tmp: Path) -> Iterator[Scenario]:
    from botctl.demo import oauth_connect_via_sandbox
    from botctl.sandbox.testing import running_sandbox

    with running_sandbox(auto_approve=True) as sandbox:
        home = tmp / "home"
        env = {
            **os.environ,
            "BOTCTL_HOME": str(home),
            "BOTCTL_NO_KEYRING": "1",
            "BOTCTL_MASTER_KEY": base64.b64encode(crypto.new_key()).decode(),
        }
        botctl("workspace", "create", "acme", "--plan", "pro", env=env)
        creds = httpx.get(sandbox.url + "/_sandbox/credentials", timeout=10).json()
        botctl(
            "connect",
            "stripe",
            "-w",
            "acme",
            "--sandbox",
            sandbox.url,
            "--api-key-stdin",
            env=env,
            input=creds["stripe"]["connect"]["credential"]["api_key"] + "\n",
        )
        zendesk = [
            arg for k, v in creds["zendesk"]["connect"]["config"].items() for arg in ("--config", f"{k}={v}")
        ]
        oauth_connect_via_sandbox(env, sandbox.url, "zendesk", "acme", *zendesk)
        rot = json.loads(botctl("identity", "rotate", "-w", "acme", "--json", env=env).stdout)
        # Two audit sinks: a file that takes every record, and a webhook nobody listens on (its backlog grows).
        env["SCENARIO_SINK_SECRET"] = "s" * 32
        botctl("audit", "sink", "add", "file", str(tmp / "shipped.ndjson"), "--name", "offsite", env=env)
        botctl(
            "audit",
            "sink",
            "add",
            "webhook",
            f"http://127.0.0.1:{free_port()}/hook",
            "--secret-env",
            "SCENARIO_SINK_SECRET",
            "--name",
            "down",
            env=env,
        )
        port, metrics_port = free_port(), free_port()
        botctl("daemon", "start", "--port", str(port), "--metrics-port", str(metrics_port), env=env)
        scenario = Scenario(
            home, env, sandbox.url, port, metrics_port, rot["secret"], rot["kid"], tmp / "shipped.ndjson"
        )
        try:
            yield scenario
        finally:
            scenario.http.close()
            botctl("daemon", "stop", env=env, check=False)
