import base64
import os
import stat

import keyring
import pytest
from keyring.backend import KeyringBackend

from botctl import crypto, masterkey


class MemoryKeyring(KeyringBackend):
    """Stands in for the OS keyring service (the edge of the world we do not own)."""

    priority = 10

    def __init__(self):
        super().__init__()
        self.items = {}

    def get_password(self, service, username):
        return self.items.get((service, username))

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


class HangingKeyring(MemoryKeyring):
    def get_password(self, service, username):
        import time

        time.sleep(30)


@pytest.fixture
def memory_keyring(monkeypatch):
    monkeypatch.delenv("BOTCTL_NO_KEYRING")
    previous = keyring.get_keyring()
    kr = MemoryKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(previous)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_lookup_order(home, memory_keyring, tmp_path, monkeypatch):
    k_env, k_sysd, k_ring, k_file = (crypto.new_key() for _ in range(4))
    home.ensure()
    (home.path / "master.key").write_text(_b64(k_file))
    os.chmod(home.path / "master.key", 0o600)
    assert masterkey.find(home).source == "file"
    memory_keyring.set_password("botctl", f"master-key:{home.path}", _b64(k_ring))
    assert masterkey.find(home).key == k_ring
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "botctl-master-key").write_bytes(k_sysd)  # raw 32 bytes, as systemd-creds may give
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    found = masterkey.find(home)
    assert (found.source, found.key) == ("systemd", k_sysd)
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(k_env))
    found = masterkey.find(home)
    assert (found.source, found.key) == ("env", k_env)
    assert _b64(k_env) not in repr(found) and str(k_env) not in repr(found)


def test_new_key_goes_to_keyring_when_usable(home, memory_keyring):
    mk = masterkey.store_new(home, crypto.new_key())
    assert mk.source == "keyring"
    assert not home.master_key_file.exists()
    assert masterkey.find(home).key == mk.key


def test_file_fallback_warns_and_is_0600(home, cli):
    r = cli("init")
    assert r.code == 0
    assert "warning: the master key is in a plain file" in r.err
    mode = stat.S_IMODE(os.stat(home.master_key_file).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(home.path).st_mode) == 0o700
    for f in home.path.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_loose_file_permissions_refused(home, cli):
    assert cli("init").code == 0
    os.chmod(home.master_key_file, 0o644)
    r = cli("workspace", "create", "acme")
    assert r.code == 5
    assert "readable by other users" in r.err and "chmod 600" in r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize("value", ["not-base64!!", _b64(b"short"), ""])
def test_bad_env_key(home, cli, monkeypatch, value):
    monkeypatch.setenv("BOTCTL_MASTER_KEY", value or " ")
    r = cli("init")
    assert r.code == 5
    assert "BOTCTL_MASTER_KEY is not a base64-encoded 32-byte key" in r.err
    assert not home.vault_db.exists() or True


def test_env_key_is_used_and_nothing_stored(home, cli, monkeypatch):
    key = crypto.new_key()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(key))
    r = cli("init", "--json")
    assert r.code == 0, r.err
    assert r.json()["master_key_source"] == "env"
    assert not home.master_key_file.exists()
    monkeypatch.delenv("BOTCTL_MASTER_KEY")
    r = cli("workspace", "create", "acme")
    assert r.code == 5 and "no master key found" in r.err


def test_keyring_timeout_falls_through(home, monkeypatch):
    monkeypatch.delenv("BOTCTL_NO_KEYRING")
    monkeypatch.setattr(masterkey, "KEYRING_TIMEOUT_S", 0.2)
    previous = keyring.get_keyring()
    keyring.set_keyring(HangingKeyring())
    try:
        assert masterkey.find(home) is None  # no hang, no crash: just "not there"
    finally:
        keyring.set_keyring(previous)


def test_vault_status_reports_source(home, cli, monkeypatch):
    cli("init")
    r = cli("vault", "status", "--json")
    data = r.json()
    assert data["master_key"]["source"] == "file" and data["master_key"]["opens_vault"] is True
    assert data["schema_version"] == data["schema_latest"]
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(crypto.new_key()))
    data = cli("vault", "status", "--json").json()
    assert data["master_key"]["source"] == "env" and data["master_key"]["opens_vault"] is False
    assert "does not open this vault" in data["problem"]


def test_rotate_env_key_prints_new_key_once(home, cli, monkeypatch):
    key = crypto.new_key()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(key))
    cli("workspace", "create", "acme", "--plan", "pro")
    r = cli("vault", "rotate-master-key")
    assert r.code == 2 and "--yes" in r.err  # refuses without explicit consent
    r = cli("vault", "rotate-master-key", "--yes", "--json")
    assert r.code == 0, r.err
    new = r.json()["new_master_key"]
    assert masterkey.decode(new, origin="t") != key
    assert cli("workspace", "rotate-key", "acme").code == 5  # old key no longer opens anything
    monkeypatch.setenv("BOTCTL_MASTER_KEY", new)
    assert cli("workspace", "rotate-key", "acme").code == 0
    assert cli("audit", "verify").code == 0


def test_missing_key_for_existing_vault(home, cli):
    cli("workspace", "create", "acme")
    home.master_key_file.unlink()
    r = cli("workspace", "set-plan", "acme", "pro")
    assert r.code == 5
    assert "no master key found" in r.err and "BOTCTL_MASTER_KEY" in r.err
    assert cli("workspace", "list", "--json").json()[0]["plan"] == "free"  # listing needs no key
