import base64
import os

import pytest

from botctl import crypto, masterkey, workspaces
from botctl.errors import DecryptError, MasterKeyError
from botctl.secret import Secret
from botctl.session import Session
from botctl.vault import Vault


def test_round_trip_and_format():
    key = crypto.new_key()
    aad = crypto.secret_aad("acme", "conn_1", "access_token")
    blob = crypto.encrypt(key, b"s3cr3t", aad)
    assert blob[0] == crypto.VERSION
    assert len(blob) == 1 + 12 + len(b"s3cr3t") + 16
    assert crypto.decrypt(key, blob, aad) == b"s3cr3t"
    assert crypto.encrypt(key, b"s3cr3t", aad) != blob  # random nonce


def test_wrong_key_fails():
    aad = crypto.secret_aad("acme", "c", "f")
    blob = crypto.encrypt(crypto.new_key(), b"x", aad)
    with pytest.raises(DecryptError):
        crypto.decrypt(crypto.new_key(), blob, aad)


@pytest.mark.parametrize(
    "moved", [("other", "conn_1", "api_key"), ("acme", "conn_2", "api_key"), ("acme", "conn_1", "api_secret")]
)
def test_ciphertext_moved_to_another_row_fails(moved):
    key = crypto.new_key()
    blob = crypto.encrypt(key, b"x", crypto.secret_aad("acme", "conn_1", "api_key"))
    with pytest.raises(DecryptError):
        crypto.decrypt(key, blob, crypto.secret_aad(*moved))


@pytest.mark.parametrize("index", [0, 1, 13, -1])
def test_tampered_byte_fails(index):
    key = crypto.new_key()
    aad = crypto.secret_aad("acme", "c", "f")
    blob = bytearray(crypto.encrypt(key, b"hello world", aad))
    blob[index] ^= 0x01
    with pytest.raises(DecryptError):
        crypto.decrypt(key, bytes(blob), aad)


def test_aad_parts_cannot_smuggle_separator():
    with pytest.raises(ValueError):
        crypto.secret_aad("acme|x", "c", "f")


def test_secret_is_masked():
    s = Secret("hunter2-very-secret")
    for shown in (repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, str([s]), str({"k": s})):
        assert "hunter2" not in shown
    assert s.reveal() == "hunter2-very-secret"
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(s)


def _setup(home):
    app = Session(home)
    ws = workspaces.create(app, "acme", plan="pro")
    app.vault.put_secret(ws.ref, "conn_1", "api_key", Secret("key-AAAA"))
    app.vault.put_secret(ws.ref, "conn_1", "refresh_token", Secret("rt-BBBB"))
    return app, ws


def test_vault_secret_moved_between_rows_in_db_fails(home):
    app, ws = _setup(home)
    other = workspaces.create(app, "other", plan="pro")
    app.vault.put_secret(other.ref, "conn_9", "api_key", Secret("other-key"))
    c = app.vault.conn
    # An attacker with write access copies acme's ciphertext into the other workspace's row.
    blob = c.execute(
        "SELECT ciphertext FROM secrets WHERE workspace_id=? AND field='api_key'", (ws.id,)
    ).fetchone()[0]
    c.execute("UPDATE secrets SET ciphertext=? WHERE workspace_id=?", (blob, other.id))
    with pytest.raises(DecryptError):
        app.vault.get_secret(other.ref, "conn_9", "api_key")
    # ... or into another field of the same connection.
    c.execute("UPDATE secrets SET ciphertext=? WHERE workspace_id=? AND field='refresh_token'", (blob, ws.id))
    with pytest.raises(DecryptError):
        app.vault.get_secret(ws.ref, "conn_1", "refresh_token")
    app.close()


def test_workspace_key_rotation_keeps_secrets_and_kills_old_key(home):
    app, ws = _setup(home)
    c = app.vault.conn
    old_wrapped = c.execute("SELECT wrapped FROM workspace_keys WHERE workspace_id=?", (ws.id,)).fetchone()[0]
    old_dek = crypto.unwrap_key(app.vault.master.key, old_wrapped, crypto.dek_aad("acme", 1))
    old_blob = c.execute("SELECT ciphertext FROM secrets WHERE field='api_key'").fetchone()[0]
    _, version = workspaces.rotate_key(app, "acme")
    assert version == 2
    app.close()
    app2 = Session(home)
    assert app2.vault.get_secret(ws.ref, "conn_1", "api_key").reveal() == "key-AAAA"
    assert app2.vault.get_secret(ws.ref, "conn_1", "refresh_token").reveal() == "rt-BBBB"
    rows = app2.vault.conn.execute(
        "SELECT version FROM workspace_keys WHERE workspace_id=?", (ws.id,)
    ).fetchall()
    assert rows == [(2,)]
    new_blob = app2.vault.conn.execute("SELECT ciphertext FROM secrets WHERE field='api_key'").fetchone()[0]
    with pytest.raises(DecryptError):
        crypto.decrypt(old_dek, new_blob, crypto.secret_aad("acme", "conn_1", "api_key"))
    assert crypto.decrypt(old_dek, old_blob, crypto.secret_aad("acme", "conn_1", "api_key")) == b"key-AAAA"
    # The old wrapped DEK is gone from the files (secure_delete + WAL checkpoint).
    app2.close()
    for name in ("vault.db", "vault.db-wal"):
        p = home.path / name
        if p.exists():
            assert old_wrapped not in p.read_bytes()


def test_master_key_rotation_keeps_secrets_and_old_key_useless(home):
    app, ws = _setup(home)
    old_key = app.vault.master.key
    new, version = app.vault.rotate_master_key(
        lambda detail: app.audit("vault.master_key_rotated", detail=detail)
    )
    assert version == 2 and new.key != old_key and new.source == "file"
    app.close()
    # The stored key was replaced, and it opens everything.
    assert masterkey.decode((home.path / "master.key").read_text(), origin="t") == new.key
    app2 = Session(home)
    assert app2.vault.get_secret(ws.ref, "conn_1", "api_key").reveal() == "key-AAAA"
    assert len(app2.vault.audit_key()) == 32
    wrapped = app2.vault.conn.execute("SELECT wrapped FROM workspace_keys").fetchone()[0]
    with pytest.raises(DecryptError):
        crypto.unwrap_key(old_key, wrapped, crypto.dek_aad("acme", 1))
    app2.close()
    # The old key, given explicitly, is refused with a clear error.
    os.environ["BOTCTL_MASTER_KEY"] = base64.b64encode(old_key).decode()
    try:
        with pytest.raises(MasterKeyError, match="does not open this vault"):
            Vault.open(home)
    finally:
        del os.environ["BOTCTL_MASTER_KEY"]


def test_interrupted_master_rotation_recovers(home):
    """Crash after the vault commit but before the new key replaced master.key: the pending key opens it."""
    app, ws = _setup(home)
    old = app.vault.master
    new_key = crypto.new_key()
    masterkey.store_pending(home, old, new_key)
    # Simulate the committed re-wrap without the promotion.
    c = app.vault.conn
    for ws_id, name, version, wrapped in c.execute(
        "SELECT k.workspace_id, w.name, k.version, k.wrapped FROM workspace_keys k JOIN workspaces w ON w.id=k.workspace_id"
    ).fetchall():
        dek = crypto.unwrap_key(old.key, wrapped, crypto.dek_aad(name, version))
        c.execute(
            "UPDATE workspace_keys SET wrapped=? WHERE workspace_id=?",
            (crypto.wrap_key(new_key, dek, crypto.dek_aad(name, version)), ws_id),
        )
    root = crypto.unwrap_key(
        old.key, c.execute("SELECT wrapped FROM wrapped_keys").fetchone()[0], crypto.AUDIT_ROOT_AAD
    )
    c.execute("UPDATE wrapped_keys SET wrapped=?", (crypto.wrap_key(new_key, root, crypto.AUDIT_ROOT_AAD),))
    c.execute("UPDATE meta SET value=? WHERE key='kcv'", (crypto.key_check_value(new_key),))
    app.close()
    app2 = Session(home)
    assert app2.vault.get_secret(ws.ref, "conn_1", "api_key").reveal() == "key-AAAA"
    assert not masterkey.pending_path(home).exists()
    assert masterkey.decode((home.path / "master.key").read_text(), origin="t") == new_key
    app2.close()


def test_delete_workspace_shreds_its_key(home):
    app, ws = _setup(home)
    wrapped = app.vault.conn.execute(
        "SELECT wrapped FROM workspace_keys WHERE workspace_id=?", (ws.id,)
    ).fetchone()[0]
    blob = app.vault.conn.execute("SELECT ciphertext FROM secrets WHERE field='api_key'").fetchone()[0]
    workspaces.delete(app, "acme")
    assert app.vault.conn.execute("SELECT count(*) FROM secrets").fetchone()[0] == 0
    app.close()
    for name in ("vault.db", "vault.db-wal"):
        p = home.path / name
        if p.exists():
            data = p.read_bytes()
            assert wrapped not in data
            assert blob not in data
