"""Messages that used to mislead a newcomer (issue #20): each says what is wrong and what to do, truly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: nothing listens there


def test_first_connect_with_a_bad_key_is_not_a_stored_credential(home, cli, sandbox):
    assert cli("workspace", "create", "acme").code == 0
    r = cli(
        "connect",
        "stripe",
        "-w",
        "acme",
        "--sandbox",
        sandbox.url,
        "--api-key-stdin",
        input="rk_test_wrong\n",
    )
    assert r.code == 20
    assert "Stripe rejected the credential you gave (HTTP 401)." in r.err
    assert "stored" not in r.err and "reconnect" not in r.err.lower()
    assert r.err.count("rejected") == 1  # said once, not "rejected the credential: Stripe rejected ..."
    assert cli("connections", "list", "-w", "acme", "--json").json() == []


def test_apply_with_a_bad_key_is_worded_like_a_first_connect(home, cli, sandbox, tmp_path, monkeypatch):
    (tmp_path / "botctl.toml").write_text(
        '[workspaces.acme]\nplan = "pro"\n\n'
        '[workspaces.acme.connections.stripe]\napi_key_env = "STRIPE_KEY"\n'
    )
    monkeypatch.setenv("BOTCTL_SANDBOX", sandbox.url)
    monkeypatch.setenv("STRIPE_KEY", "rk_test_wrong")
    r = cli("apply", "-f", str(tmp_path / "botctl.toml"))
    assert r.code == 7, r.err
    assert "rejected the credential you gave" in r.err and "stored" not in r.err


def test_an_unreachable_vendor_names_the_url_and_the_cause(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    port = _closed_port()
    r = cli(
        "connect",
        "stripe",
        "-w",
        "acme",
        "--sandbox",
        f"http://127.0.0.1:{port}",
        "--api-key-stdin",
        input="rk_test_anything\n",
    )
    assert r.code == 22
    assert f"http://127.0.0.1:{port}/stripe/" in r.err and "connection refused" in r.err
    assert "--sandbox" in r.err  # what to check
    assert "rk_test_anything" not in r.err + r.out


def test_a_loose_master_key_is_not_reported_missing(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    os.chmod(home.master_key_file, 0o644)
    r = cli("vault", "status")
    assert r.code == 5, r.out + r.err
    assert "missing" not in r.out and "not usable" in r.out
    assert "readable by other users" in r.err and "chmod 600" in r.err
    r = cli("vault", "status", "--json")
    assert r.code == 5 and r.json()["master_key"]["opens_vault"] is False
    findings = {f["check"]: f for f in cli("doctor", "--json").json()["findings"]}
    assert findings["master key"]["status"] == "fail"
    assert (
        findings["audit"]["status"] == "ok" and "chain intact" in findings["audit"]["message"]
    )  # still checked
    home.master_key_file.write_text("not a key\n")  # garbled too: nothing to check with, and it says so
    findings = {f["check"]: f for f in cli("doctor", "--json").json()["findings"]}
    assert findings["audit"]["status"] == "warn" and "not checked" in findings["audit"]["message"]


def test_a_garbled_master_key_is_restored_never_regenerated(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    home.master_key_file.write_text("this is not a key\n")
    r = cli("doctor", "--json")
    assert r.code == 1
    finding = next(f for f in r.json()["findings"] if f["check"] == "master key")
    assert "restore" in finding["fix"] and "openssl" not in finding["fix"]
    r = cli("workspace", "show", "acme")
    assert "openssl" not in r.err


def test_a_corrupt_vault_is_reported_by_doctor(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    for suffix in ("-wal", "-shm"):
        (home.path / f"vault.db{suffix}").unlink(missing_ok=True)
    home.vault_db.write_bytes(b"this is not an SQLite database, just bytes\n" * 200)
    r = cli("doctor")
    assert r.code == 1
    assert "unexpected" not in r.err and "FAIL  vault:" in r.out and "restore vault.db" in r.out
    assert "daemon:" in r.out  # the checks after it still ran


def test_a_home_that_does_not_exist_is_said(cli, tmp_path):
    missing = tmp_path / "typo-home"
    r = cli("--home", str(missing), "workspace", "list")
    assert r.code != 0 and f"no botctl home at {missing}" in r.err and "no workspaces yet" not in r.err
    assert not missing.exists()


def test_apply_names_a_missing_file_plainly(home, cli, tmp_path):
    r = cli("apply", "-f", str(tmp_path / "nope.toml"))
    assert r.code == 2 and "nope.toml: no such file." in r.err and "Error:" not in r.err
    assert "FileNotFoundError" not in r.err and "Errno" not in r.err
    r = cli("apply", "-f", str(tmp_path))
    assert r.code == 2 and "is a folder" in r.err and "IsADirectoryError" not in r.err


def test_apply_words_missing_settings_as_toml_keys(home, cli, tmp_path, monkeypatch):
    (tmp_path / "botctl.toml").write_text(
        '[workspaces.acme]\nplan = "pro"\n\n'
        '[workspaces.acme.connections.zendesk]\naccess_token_env = "ZD"\n\n'
        '[[workspaces.acme.identity.public_keys]]\nkid = "k"\nalg = "ES256"\n'
        'path = "nope.pem"\n'
    )
    monkeypatch.setenv("ZD", "x")
    r = cli("apply", "-f", str(tmp_path / "botctl.toml"))
    assert r.code == 2
    assert "zendesk.subdomain: Zendesk needs subdomain" in r.err and "--subdomain" not in r.err
    assert "nope.pem: No such file or directory" in r.err and "FileNotFoundError" not in r.err


def _spawn(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "botctl", *args], text=True, env=os.environ.copy(), **kw)


def test_ctrl_c_in_connect_says_interrupted_and_stores_nothing(home, cli, sandbox):
    assert cli("workspace", "create", "acme").code == 0
    proc = _spawn(
        "connect",
        "hubspot",
        "-w",
        "acme",
        "--no-browser",
        "--sandbox",
        sandbox.url,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "authorize" not in line and time.monotonic() < deadline:  # waiting for the browser now
            line = proc.stderr.readline()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "no answer from the browser" not in err and "Traceback" not in err
    assert cli("connections", "list", "-w", "acme", "--json").json() == []


def test_a_closed_pipe_is_not_an_error(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    for _ in range(5):
        assert cli("workspace", "set-plan", "acme", "business").code == 0
    proc = _spawn("audit", "-n", "100", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head -1` that has already gone: every write meets a closed pipe
    err = proc.stderr.read()
    proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_an_unreachable_authorization_server_is_named_too():
    import asyncio

    from botctl.oauth import protocol

    port = _closed_port()
    url = f"http://127.0.0.1:{port}/oauth/token"
    with pytest.raises(protocol.EndpointError) as caught:
        asyncio.run(protocol._post(url, {"grant_type": "refresh_token"}, {}, what="token endpoint"))
    assert f"could not reach the token endpoint at {url} (connection refused)" in str(caught.value)
