"""The provider loads the embedding model only for a home that has vectors to compare questions with:
a home answered by FTS5 alone never maps onnxruntime (about 200 MB of a provider's memory)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from botctl import crypto
from cluster_kit import free_port, sh

pytestmark = pytest.mark.slow
DOCS = Path(__file__).parent / "data" / "knowledge_eval" / "store" / "docs"


def _provider_maps_onnxruntime(env: dict) -> bool:
    pid = json.loads(sh(env, "daemon", "status", "--json", timeout=180).stdout)["provider"]["pid"]
    return "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()


def _ask(port: int, question: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        try:
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/workspaces/acme/chat", json={"message": question}, timeout=60
            )
            return r.json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_provider_loads_the_model_only_when_a_workspace_has_vectors(tmp_path):
    env = {
        **os.environ,
        "BOTCTL_HOME": str(tmp_path / "home"),
        "BOTCTL_NO_KEYRING": "1",
        "BOTCTL_MASTER_KEY": base64.b64encode(crypto.new_key()).decode(),
        "BOTCTL_KNOWLEDGE_DENSE": "1",
    }
    env.pop("BOTCTL_DATABASE_URL", None)
    sh(env, "workspace", "create", "acme", timeout=180)
    port = free_port()
    try:
        # Documents added with dense retrieval off: passages, no vectors. The provider never loads the model.
        sh({**env, "BOTCTL_KNOWLEDGE_DENSE": "0"}, "knowledge", "add", "-w", "acme", str(DOCS), timeout=180)
        sh(env, "daemon", "start", "--port", str(port), "--metrics-port", str(free_port()), timeout=180)
        answer = _ask(port, "How do I start a return?")
        assert answer["grounded"] is True
        assert not _provider_maps_onnxruntime(env)
        sh(env, "daemon", "stop", timeout=180)

        # The next add embeds them: the restarted provider loads the model before the first question,
        # and a paraphrase FTS5 alone refuses is answered.
        sh(env, "knowledge", "add", "-w", "acme", str(DOCS), timeout=180)
        sh(env, "daemon", "start", "--port", str(port), "--metrics-port", str(free_port()), timeout=180)
        assert _provider_maps_onnxruntime(env)
        assert _ask(port, "Can I get my money back?")["grounded"] is True
    finally:
        subprocess.run(
            [sys.executable, "-m", "botctl", "daemon", "stop"], env=env, capture_output=True, timeout=60
        )
