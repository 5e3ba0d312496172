"""The edge on its own host: a provider listening on TCP with mutual TLS, an edge-only process reaching it.

A real daemon (`botctl daemon start --provider-listen 127.0.0.1:P`) and a real edge-only process
(`botctl edge start --provider https://127.0.0.1:P --cert --key --ca`, i.e. `python -m botctld`) holding
only its own certificate, key and the CA certificate in a folder of its own (the "edge host"). Visitors'
actions go through it end to end. Then the attacks: a TLS client with no certificate, a certificate of
another CA, a revoked one, an expired one each get no HTTP answer from the provider at all; an edge given
another CA refuses the real provider; the edge's environ, argv, open files and its folder hold no master
key, database URL or vault secret; under Landlock it can connect to the provider's port and no other.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from botctl.cluster import pki
from botctld.confine import landlock_abi
from cluster_kit import free_port, sh
from test_daemon import _setup_home
from test_secrets_demo import _forms, _walk

pytestmark = pytest.mark.slow


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the edge exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the edge did not listen in time")


class RemoteEdge:
    def __init__(
        self, folder: Path, provider_port: int, *, ca: Path | None = None, name: str = "edge-1"
    ) -> None:
        self.port = free_port()
        self.log = folder / f"{name}-{self.port}.log"
        # The edge host's whole environment: enough to run Python (no BOTCTL_*, no database URL).
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")}
        self.argv = [
            sys.executable,
            "-m",
            "botctl",
            "edge",
            "start",
            "--provider",
            f"https://127.0.0.1:{provider_port}",
            "--cert",
            str(folder / f"{name}.crt"),
            "--key",
            str(folder / f"{name}.key"),
            "--ca",
            str(ca or folder / "ca.crt"),
            "--port",
            str(self.port),
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv, env=env, cwd=folder, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        _wait_port(self.port, self.proc)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def cluster(sandbox_server, tmp_path_factory):
    sandbox_server.reset()
    tmp = tmp_path_factory.mktemp("edgehost")
    dm = _setup_home(tmp, sandbox_server, port=free_port())
    sh(dm.env, "daemon", "stop")
    sh(dm.env, "cluster", "ca", "init")
    sh(dm.env, "cluster", "cert", "issue", "provider")
    edge_host = tmp / "edge-host"  # what is copied to the edge's machine, and nothing else
    sh(dm.env, "cluster", "cert", "issue", "edge-1", "--out", str(edge_host))
    shutil.copy(dm.home / "cluster" / "ca.crt", edge_host / "ca.crt")
    dm.provider_port = free_port()
    sh(
        dm.env,
        "daemon",
        "start",
        "--port",
        str(dm.port),
        "--provider-listen",
        f"127.0.0.1:{dm.provider_port}",
    )
    dm.edge_host = edge_host
    edge = RemoteEdge(edge_host, dm.provider_port)
    dm.edge = edge
    yield dm
    edge.stop()
    sh(dm.env, "daemon", "stop", check=False)


def _tls_ask(port: int, cert: Path | None, key: Path | None, ca: Path) -> bytes | str:
    """One HTTP request to the provider's TLS listener as a client with this certificate: the bytes it
    answered, or the name of the error that stopped it (handshake refused, connection reset, closed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="provider") as tls:
                tls.sendall(b"GET /v1/status HTTP/1.1\r\nHost: provider\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
                return data
    except (OSError, ssl.SSLError) as exc:
        return type(exc).__name__


def _visitor_action(dm, http: httpx.Client) -> httpx.Response:
    return http.post(
        "/v1/workspaces/acme/actions/zendesk.list_my_tickets",
        json={"params": {}},
        headers={"Authorization": f"Bearer {dm.token()}", "Content-Type": "application/json"},
    )


def test_status_names_the_mutual_tls_listener(cluster):
    st = json.loads(sh(cluster.env, "daemon", "status", "--json").stdout)
    assert st["provider"]["listen_tls"] == f"127.0.0.1:{cluster.provider_port}"
    assert (
        f"https://127.0.0.1:{cluster.provider_port} (mutual TLS)"
        in sh(cluster.env, "daemon", "status").stderr + sh(cluster.env, "daemon", "status").stdout
    )


def test_a_visitor_action_through_the_edge_only_process(cluster):
    r = _visitor_action(cluster, cluster.edge.http)
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    records = [x for x in cluster.audit() if x.get("request_id") == rid]
    assert [x["outcome"] for x in records if x["event"] == "action.run"] == ["ok"], records
    # The same answer as through the node's own edge (Unix socket).
    local = _visitor_action(cluster, cluster.http)
    assert local.status_code == 200 and local.json()["result"] == r.json()["result"]
    assert cluster.edge.http.get("/readyz").status_code == 200


def test_the_provider_answers_only_an_allowed_client_certificate(cluster, tmp_path):
    ca = cluster.home / "cluster" / "ca.crt"
    port = cluster.provider_port
    ok = _tls_ask(port, cluster.edge_host / "edge-1.crt", cluster.edge_host / "edge-1.key", ca)
    assert isinstance(ok, bytes) and ok.startswith(b"HTTP/1.1 200"), ok  # the control: this client is heard

    refused = {"no certificate": (None, None)}
    other = tmp_path / "other-ca"
    pki.init_ca(other)
    pki.issue(other, "edge-1")  # same name, another CA
    refused["another CA"] = (
        other / "cluster" / "certs" / "edge-1.crt",
        other / "cluster" / "certs" / "edge-1.key",
    )
    sh(cluster.env, "cluster", "cert", "issue", "edge-2")
    sh(cluster.env, "cluster", "cert", "revoke", "edge-2")
    certs = cluster.home / "cluster" / "certs"
    refused["revoked"] = (certs / "edge-2.crt", certs / "edge-2.key")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    pki.issue(cluster.home, "edge-old", not_before=past, not_after=past + dt.timedelta(days=1))
    refused["expired (though on the allow-list)"] = (certs / "edge-old.crt", certs / "edge-old.key")
    pki.issue(cluster.home, "provider-copy")
    for what, (cert, key) in refused.items():
        answer = _tls_ask(port, cert, key, ca)
        assert not (isinstance(answer, bytes) and answer), f"{what}: the provider answered {answer[:80]!r}"

    events = [x["event"] for x in cluster.audit()]
    assert events.count("cluster.cert_issued") >= 3 and "cluster.cert_revoked" in events


def test_a_revoked_edge_serves_nothing(cluster):
    """Revoked while running: its kept-alive connection to the provider is cut at the next request, and
    every new one is refused; the visitor gets provider_unavailable, the provider acts on nothing."""
    sh(cluster.env, "cluster", "cert", "issue", "edge-3", "--out", str(cluster.edge_host))
    edge = RemoteEdge(cluster.edge_host, cluster.provider_port, name="edge-3")
    try:
        assert _visitor_action(cluster, edge.http).status_code == 200  # the edge now holds an idle connection
        sh(cluster.env, "cluster", "cert", "revoke", "edge-3")
        before = len(cluster.audit())
        for _ in range(2):
            r = _visitor_action(cluster, edge.http)
            assert r.status_code == 503 and r.json()["error"]["code"] == "provider_unavailable", r.text
        assert [x["event"] for x in cluster.audit()[before:]] == [], "the provider acted for a revoked edge"
    finally:
        edge.stop()


def test_the_edge_refuses_a_provider_of_another_ca(cluster, tmp_path):
    other = tmp_path / "other"
    pki.init_ca(other)
    edge = RemoteEdge(cluster.edge_host, cluster.provider_port, ca=other / "cluster" / "ca.crt")
    try:
        r = _visitor_action(cluster, edge.http)
        assert r.status_code == 503 and r.json()["error"]["code"] == "provider_unavailable", r.text
    finally:
        edge.stop()


def _server_cert_of_our_ca(home: Path, folder: Path, name: str) -> tuple[Path, Path]:
    """A server certificate the cluster CA signed for another name (what an operator might issue for
    another service): a server (EKU serverAuth) of the right CA, but not the provider."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key((home / "cluster" / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((home / "cluster" / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / f"{name}.crt", folder / f"{name}.key"


@pytest.mark.parametrize("impostor_cert", ["an edge's certificate", "a server certificate named otherwise"])
def test_the_edge_refuses_a_server_of_our_ca_that_is_not_the_provider(cluster, tmp_path, impostor_cert):
    """A stolen edge key cannot impersonate the provider to other edges (a client certificate), nor can
    another server of the same CA (the name must be `provider`)."""
    if impostor_cert == "an edge's certificate":
        cert, key = cluster.edge_host / "edge-1.crt", cluster.edge_host / "edge-1.key"
    else:
        cert, key = _server_cert_of_our_ca(cluster.home, tmp_path / "other-server", "billing")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: list[bytes] = []

    def impostor() -> None:
        listener.settimeout(30)
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    served.append(tls.recv(65536))  # reached only if the edge accepted this certificate
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    )
            except (OSError, ssl.SSLError):
                pass

    import threading

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    edge = RemoteEdge(cluster.edge_host, port)
    try:
        r = _visitor_action(cluster, edge.http)
        assert r.status_code == 503 and r.json()["error"]["code"] == "provider_unavailable", r.text
        assert served == []
    finally:
        edge.stop()
        listener.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--provider", "https://127.0.0.1:1"], "needs --cert, --key and --ca"),
        (
            ["--provider", "http://127.0.0.1:1", "--cert", "c", "--key", "k", "--ca", "a"],
            "expected https://HOST:PORT",
        ),
        (
            ["--provider", "https://127.0.0.1:1", "--cert", "/nonexistent.crt", "--key", "k", "--ca", "a"],
            "cannot load the edge's certificate",
        ),
    ],
)
def test_bad_edge_options_are_refused_before_serving(args, says):
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "botctld", *args, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_edge_host_holds_no_database_url_password_or_master_key(cluster):
    pid = cluster.edge.proc.pid  # `botctl edge start` execs python -m botctld: same process
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"botctld" in cmdline
    secrets = {
        cluster.env["BOTCTL_MASTER_KEY"].encode(),
        b"BOTCTL_MASTER_KEY",
        b"BOTCTL_DATABASE_URL",
        b"postgresql://",
        b"BOTCTL_HOME",
        str(cluster.home).encode(),
    }
    if os.environ.get("BOTCTL_DATABASE_URL"):
        secrets.add(os.environ["BOTCTL_DATABASE_URL"].encode())
    values: set[str] = set()
    _walk(cluster.sandbox.credentials(), values)  # every credential the vault was given
    secrets |= {f for v in values for f in _forms(v)}
    seen = {"cmdline": cmdline}
    if os.geteuid() == 0:  # the edge is non-dumpable: only root reads its environ
        seen["environ"] = Path(f"/proc/{pid}/environ").read_bytes()
    fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not any(str(cluster.home) in f for f in fds), fds
    for f in cluster.edge_host.iterdir():
        seen[f.name] = f.read_bytes()
    assert {p.name for p in cluster.edge_host.iterdir() if p.suffix in (".crt", ".key")} >= {
        "edge-1.key",
        "ca.crt",
    }
    assert not (cluster.edge_host / "ca.key").exists()
    for where, data in seen.items():
        for secret in secrets:
            assert secret not in data, f"{secret[:12]!r}… found in the edge's {where}"
    for f in cluster.edge_host.glob("*.key"):
        assert f.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(landlock_abi() < 4, reason="Landlock ABI 4+ governs TCP connect")
def test_under_landlock_the_edge_connects_to_the_provider_port_only(cluster):
    line = next(x for x in cluster.edge.log.read_text().splitlines() if "confinement" in x)
    info = json.loads(line.split("confinement ", 1)[1])
    assert info["landlock"] is True and info["tcp"] == f"connect to port {cluster.provider_port} only", info
    # The same confinement, applied to a probe: the provider's port connects, the node's edge port does not.
    code = (
        "import json,socket,sys; from botctld.confine import confine\n"
        f"confine(deny=[], required=True, connect_ports=({cluster.provider_port},))\n"
        "out = {}\n"
        f"for port in ({cluster.provider_port}, {cluster.port}):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=5).close(); out[port] = 'connected'\n"
        "    except OSError as exc:\n"
        "        out[port] = type(exc).__name__\n"
        "print(json.dumps(out))"
    )
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
        ).stdout
    )
    assert out == {str(cluster.provider_port): "connected", str(cluster.port): "PermissionError"}, out
