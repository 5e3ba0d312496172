import base64
import json
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
    assert r.code == 2 and "--yes" in r.err and "--new-key-stdin" in r.err  # refuses without explicit consent
    r = cli("vault", "rotate-master-key", "--yes", "--json")
    assert r.code == 0, r.err
    data = r.json()
    new = data["new_master_key"]
    assert masterkey.decode(new, origin="t") != key and data["complete"] is True
    # Until BOTCTL_MASTER_KEY holds the new key, it is kept in master.key.next and opens the vault
    # (with a warning saying where, never the key).
    pending = masterkey.pending_path(home)
    assert data["pending"] == str(pending)
    assert masterkey.decode(pending.read_text(), origin="t") == masterkey.decode(new, origin="t")
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    r = cli("workspace", "rotate-key", "acme")
    assert r.code == 0 and "BOTCTL_MASTER_KEY still holds the previous master key" in r.err
    assert str(pending) in r.err and new not in r.err + r.out
    status = cli("vault", "status", "--json").json()
    assert status["master_key"]["opens_vault"] is True and status["pending_rotation"]["state"] == "committed"
    assert new not in json.dumps(status)
    r = cli("vault", "rotate-master-key", "--yes")  # one rotation at a time
    assert r.code == 4 and "not finished" in r.err and new not in r.out + r.err
    # The operator stores the new key: the pending file goes, the old key opens nothing any more.
    monkeypatch.setenv("BOTCTL_MASTER_KEY", new)
    assert cli("workspace", "rotate-key", "acme").code == 0
    assert not pending.exists()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(key))
    assert cli("workspace", "rotate-key", "acme").code == 5
    monkeypatch.setenv("BOTCTL_MASTER_KEY", new)
    assert cli("audit", "verify").code == 0
    recs = cli("audit", "--event", "vault.master_key_rotated", "--json").ndjson()
    assert [r["detail"]["key_version"] for r in recs] == [2]
    assert recs[0]["detail"]["kcv"] == crypto.key_check_value(masterkey.decode(new, origin="t"))
    assert new not in json.dumps(recs)


def test_rotate_env_key_from_stdin_or_file(home, cli, monkeypatch, tmp_path):
    key = crypto.new_key()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(key))
    cli("workspace", "create", "acme", "--plan", "pro")
    # Refused: not a key, the current key, both sources at once, an unreadable file. Nothing changes.
    r = cli("vault", "rotate-master-key", "--new-key-stdin", input="not-a-key\n")
    assert r.code == 5 and "the key on stdin is not a base64-encoded 32-byte key" in r.err
    r = cli("vault", "rotate-master-key", "--new-key-stdin", "--yes", input=_b64(key) + "\n")
    assert r.code == 2 and "the one in use" in r.err
    r = cli("vault", "rotate-master-key", "--new-key-stdin", "--new-key-file", "x")
    assert r.code == 2
    r = cli("vault", "rotate-master-key", "--new-key-file", str(tmp_path / "missing"))
    assert r.code == 2 and "cannot read" in r.err
    assert cli("vault", "status", "--json").json()["master_key"]["version"] == 1
    # Without a terminal to ask, a rotation needs --yes (as every destructive command: issue #20)...
    new = crypto.new_key()
    r = cli("vault", "rotate-master-key", "--new-key-stdin", input=_b64(new) + "\n")
    assert r.code == 2 and "--yes" in r.err
    assert cli("vault", "status", "--json").json()["master_key"]["version"] == 1
    # ... and with it: the operator already holds the key; nothing is printed or written beside the vault.
    r = cli("vault", "rotate-master-key", "--new-key-stdin", "--yes", input=_b64(new) + "\n")
    assert r.code == 0, r.err
    assert r.out == "" and "rotation complete" in r.err and _b64(new) not in r.err
    assert not masterkey.pending_path(home).exists()
    assert cli("workspace", "rotate-key", "acme").code == 5  # the old key opens nothing
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(new))
    assert cli("workspace", "rotate-key", "acme").code == 0
    newer = crypto.new_key()
    key_file = tmp_path / "next.key"
    key_file.write_text(_b64(newer) + "\n")
    r = cli("vault", "rotate-master-key", "--new-key-file", str(key_file), "--yes", "--json")
    assert r.code == 0 and r.json()["key_version"] == 3 and r.json()["new_master_key"] is None
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(newer))
    assert cli("audit", "verify").code == 0
    recs = cli("audit", "--event", "vault.master_key_rotated", "--json").ndjson()
    assert [(r["detail"]["key_version"], r["detail"]["new_key"]) for r in recs] == [
        (2, "supplied"),
        (3, "supplied"),
    ]


@pytest.mark.parametrize(
    "failpoint",
    ["rotate.pending_stored", "rotate.rewrapped", "rotate.audited", "rotate.committed", "rotate.promoted"],
)
def test_keyring_rotation_interrupted_at_every_step(home, memory_keyring, monkeypatch, failpoint):
    """Ctrl-C at each step of a keyring rotation: the stored keys open the vault, nothing pending stays."""
    from botctl import failpoints
    from botctl.session import Session

    with Session(home) as app:
        app.vault  # noqa: B018 - creates the vault and its key in the keyring
        assert app.vault.master.source == "keyring"
        old = app.vault.master.key
        monkeypatch.setattr(failpoints, "_ACTIONS", {failpoint: "interrupt"})
        with pytest.raises(KeyboardInterrupt):
            app.vault.rotate_master_key(lambda d: app.audit("vault.master_key_rotated", detail=d))
        monkeypatch.setattr(failpoints, "_ACTIONS", {})
    committed = failpoint in ("rotate.committed", "rotate.promoted")
    with Session(home) as app:
        assert app.vault.master.source == "keyring"
        assert (app.vault.master.key != old) is committed
        from botctl import audit

        assert audit.verify(home, app.vault.audit_key(), app.vault.conn).ok
    user = f"master-key:{home.path}"
    assert ("botctl", user + ":next") not in memory_keyring.items
    assert masterkey.decode(memory_keyring.items[("botctl", user)], origin="t") == masterkey.find(home).key


def test_stale_pending_key_is_removed_and_reported(home, cli):
    """A pending key from a rotation that never committed: status says so (not the key); opening deletes it."""
    assert cli("workspace", "create", "acme").code == 0
    stale = crypto.new_key()
    masterkey.store_pending(home, masterkey.find(home), stale)
    r = cli("vault", "status", "--json")
    assert r.json()["pending_rotation"]["state"] == "stale" and r.json()["master_key"]["opens_vault"] is True
    assert _b64(stale) not in r.out
    r = cli("vault", "status")
    assert "pending rotation" in r.out and "never committed" in r.err and _b64(stale) not in r.out + r.err
    assert masterkey.pending_path(home).exists()  # status only reads
    assert cli("workspace", "set-plan", "acme", "pro").code == 0
    assert not masterkey.pending_path(home).exists()
    assert cli("vault", "status", "--json").json()["pending_rotation"] is None


def test_doctor_reports_a_pending_env_rotation(home, cli, monkeypatch):
    key = crypto.new_key()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", _b64(key))
    cli("workspace", "create", "acme")
    new = cli("vault", "rotate-master-key", "--yes", "--json").json()["new_master_key"]
    r = cli("doctor", "--json")
    findings = {f["check"]: f for f in r.json()["findings"]}
    rotation = findings["master-key rotation"]
    assert rotation["status"] == "warn" and str(masterkey.pending_path(home)) in rotation["fix"]
    assert "BOTCTL_MASTER_KEY" in rotation["fix"] and findings["audit"]["status"] == "ok"
    assert new not in r.out + r.err


def test_failpoints_parse_and_stay_quiet():
    from botctl import failpoints

    assert failpoints._parse("a=kill, b=interrupt,c=explode,d,=kill") == {"a": "kill", "b": "interrupt"}
    failpoints.hit("rotate.committed")  # not named in this environment: returns


def test_missing_key_for_existing_vault(home, cli):
    cli("workspace", "create", "acme")
    home.master_key_file.unlink()
    r = cli("workspace", "set-plan", "acme", "pro")
    assert r.code == 5
    assert "no master key found" in r.err and "BOTCTL_MASTER_KEY" in r.err
    assert cli("workspace", "list", "--json").json()[0]["plan"] == "free"  # listing needs no key


def test_opening_during_a_rotation_never_takes_its_key_for_stale(home):
    """A vault opened while a rotation holds the write lock (its pending key written, not yet committed)
    waits for it instead of deleting that key, then opens with the new key."""
    import threading

    from botctl.session import Session
    from botctl.vault import Vault

    with Session(home) as app:
        app.vault  # noqa: B018 - creates the vault (file source in tests)
    holding, release, opened = threading.Event(), threading.Event(), {}

    def announce(key, where):
        holding.set()
        assert release.wait(10)

    def rotate():
        with Session(home) as app:
            opened["new"] = app.vault.rotate_master_key(
                lambda d: app.audit("vault.master_key_rotated", detail=d), announce=announce
            )[0].key

    def open_vault():
        with Vault.open(home) as v:
            opened["key"] = v.master.key

    rotator = threading.Thread(target=rotate)
    rotator.start()
    assert holding.wait(10) and masterkey.pending_path(home).exists()
    opener = threading.Thread(target=open_vault)
    opener.start()
    opener.join(0.5)
    assert opener.is_alive()  # waiting for the rotation's lock, the pending key untouched
    assert masterkey.pending_path(home).exists()
    release.set()
    rotator.join(10)
    opener.join(10)
    assert opened["key"] == opened["new"] == masterkey.find(home).key
    assert not masterkey.pending_path(home).exists()


def test_a_rotation_never_overwrites_another_ones_pending_key(home):
    """Two rotations from processes that opened the vault before either ran: the second is refused
    before it touches the pending key, so the first one's key is never lost."""
    from botctl.errors import Conflict
    from botctl.session import Session

    with Session(home) as first, Session(home) as second:
        first.vault, second.vault  # noqa: B018 - both opened with the current key
        new, _ = first.vault.rotate_master_key(lambda d: first.audit("vault.master_key_rotated", detail=d))
        with pytest.raises(Conflict, match="rotated by another process"):
            second.vault.rotate_master_key(lambda d: second.audit("vault.master_key_rotated", detail=d))
    assert masterkey.find(home).key == new.key and not masterkey.pending_path(home).exists()
    with Session(home) as app:
        assert app.vault.master.key == new.key
