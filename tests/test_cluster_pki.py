"""`botctl cluster ca|cert`: the CA and certificates of the provider-edge mutual-TLS link (no daemon)."""

from __future__ import annotations

import json

from cryptography import x509

from botctl.cluster import pki


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_ca_init_issue_revoke_with_private_files_and_audit(cli, home):
    assert cli("init").code == 0
    r = cli("cluster", "ca", "init", "--json")
    assert r.code == 0, r.err
    d = home.path / "cluster"
    key_pem = (d / "ca.key").read_text()
    assert _mode(d / "ca.key") == 0o600 and _mode(d) == 0o700
    assert key_pem.split("\n")[1] not in r.out + r.err  # the CA key is never printed

    again = cli("cluster", "ca", "init")
    assert again.code == 4 and "already exists" in again.err and (d / "ca.key").read_text() == key_pem

    issued = cli("cluster", "cert", "issue", "edge-1", "--days", "7", "--json").json()
    cert = x509.load_pem_x509_certificate((d / "certs" / "edge-1.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 7
    assert _mode(d / "certs" / "edge-1.key") == 0o600 and _mode(d / "certs" / "edge-1.crt") == 0o600
    assert (d / "certs" / "edge-1.key").read_text().split("\n")[1] not in json.dumps(issued)
    assert list(pki.load_allowed(home.path)) == [issued["fingerprint"]]

    provider = cli("cluster", "cert", "issue", "provider", "--json").json()
    assert provider["role"] == "provider" and provider["fingerprint"] not in pki.load_allowed(home.path)

    reissued = cli("cluster", "cert", "issue", "edge-1", "--json").json()  # replaces the old one
    assert list(pki.load_allowed(home.path)) == [reissued["fingerprint"]]

    assert cli("cluster", "cert", "revoke", "edge-1").code == 0
    assert pki.load_allowed(home.path) == {}
    gone = cli("cluster", "cert", "revoke", "edge-1")
    assert gone.code == 3 and "cluster cert list" in gone.err

    events = [json.loads(x) for x in cli("audit", "--json", "-n", "100").out.splitlines() if x.strip()]
    kinds = [e["event"] for e in events if e["event"].startswith("cluster.")]
    assert sorted(kinds) == sorted(
        ["cluster.ca_created"] + ["cluster.cert_issued"] * 3 + ["cluster.cert_revoked"]
    )
    assert key_pem.split("\n")[1] not in json.dumps(events)


def test_bad_input_is_refused_with_a_code_and_nothing_written(cli, home):
    assert cli("init").code == 0
    no_ca = cli("cluster", "cert", "issue", "edge-1")
    assert no_ca.code == 3 and "no cluster CA" in no_ca.err and "botctl cluster ca init" in no_ca.err
    assert cli("cluster", "ca", "init").code == 0
    for args, says in (
        (("Edge_1",), "not a certificate name"),
        (("../x",), "not a certificate name"),
        (("edge-1", "--days", "0"), "1 to 397 days"),
        (("edge-1", "--days", "400"), "1 to 397 days"),
    ):
        r = cli("cluster", "cert", "issue", *args)
        assert r.code == 2 and says in r.err and "Traceback" not in r.err, (args, r.err)
    assert not (home.path / "cluster" / "certs").exists() and pki.load_allowed(home.path) == {}


def test_provider_listen_needs_the_provider_certificate(cli, home):
    assert cli("init").code == 0
    r = cli("daemon", "start", "--no-edge", "--provider-listen", "127.0.0.1:1")
    assert r.code == 3 and "cluster cert issue provider" in r.err
    r = cli("daemon", "start", "--no-edge", "--provider-listen", "nowhere")
    assert r.code != 0 and "HOST:PORT" in r.err


def test_doctor_names_certificates_that_expire_within_a_week(cli, home):
    import datetime as dt

    assert cli("init").code == 0
    assert "cluster certificates" not in cli("doctor").out  # no cluster: nothing to say
    pki.init_ca(home.path)
    pki.issue(home.path, "provider", days=2)
    pki.issue(home.path, "edge-1", days=30)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    pki.issue(home.path, "edge-2", not_before=past, not_after=past + dt.timedelta(days=1))
    out = cli("doctor").out
    lines = [line for line in out.splitlines() if "cluster certificates" in line]
    assert len(lines) == 2, out
    assert "provider certificate provider expires" in out and "edge certificate edge-2 expired" in out
    assert "edge-1" not in "\n".join(lines)
    assert "botctl cluster cert issue provider" in out
