"""No secret in plaintext anywhere under the home, in CLI output or in the audit log."""

import base64

from botctl import crypto, workspaces
from botctl.secret import Secret
from botctl.session import Session


def _all_bytes(home):
    return {p.name: p.read_bytes() for p in home.path.rglob("*") if p.is_file()}


def test_env_master_key_and_secrets_never_written(home, cli, monkeypatch):
    key = crypto.new_key()
    b64 = base64.b64encode(key).decode()
    monkeypatch.setenv("BOTCTL_MASTER_KEY", b64)
    outputs = []
    for args in (
        ("init",),
        ("workspace", "create", "acme", "--plan", "pro"),
        ("vault", "status", "--json"),
        ("workspace", "rotate-key", "acme"),
        ("audit", "--json"),
        ("audit", "verify", "--json"),
    ):
        r = cli(*args)
        assert r.code == 0, r.err
        outputs.append(r.out + r.err)
    plaintext = "needle-api-key-PLAINTEXT-123456"
    with Session(home) as app:
        ws = workspaces.get(app.vault.conn, "acme")
        app.vault.put_secret(ws.ref, "conn_1", "api_key", Secret(plaintext))
        app.audit("connection.created", workspace="acme", detail={"api_key": plaintext, "label": "x"})
        assert app.vault.get_secret(ws.ref, "conn_1", "api_key").reveal() == plaintext
    needles = [key, b64.encode(), plaintext.encode(), base64.b64encode(plaintext.encode())]
    for name, data in _all_bytes(home).items():
        for needle in needles:
            assert needle not in data, (name, needle[:6])
    for text in outputs:
        assert b64 not in text and plaintext not in text
