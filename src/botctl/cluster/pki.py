"""The cluster's own certificate authority: the mutual-TLS link between a provider and remote edges.

Layout in the home (folder `cluster/`, 0700):

    ca.key            the CA's ECDSA P-256 private key, 0600, never printed or sent anywhere
    ca.crt            the CA certificate (public: copy it to every edge host)
    certs/NAME.crt    a certificate this CA issued (NAME is "provider" or an edge's name)
    certs/NAME.key    its private key, 0600 (move an edge's to the edge host, then delete it here)
    allowed.json      the edge certificates the provider accepts: SHA-256 fingerprint -> name, serial, expiry

A chain to the CA is necessary, not sufficient: the provider also requires the client certificate's
fingerprint to be in `allowed.json`, so `revoke` takes effect at the next connection without a CRL.
Certificates are short-lived (30 days by default): re-issue before they expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from botctl.errors import BotctlError, Conflict, NotFound, UsageError

DEFAULT_DAYS = 30
CA_DAYS = 3650
PROVIDER_NAME = "provider"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def cluster_dir(home_path: Path) -> Path:
    return Path(home_path) / "cluster"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"{name!r} is not a certificate name.",
            code="invalid_cert_name",
            hint="Lower-case letters, digits and '-', at most 63 characters: for example edge-1.",
        )
    return name


def fingerprint(cert_der: bytes) -> str:
    """SHA-256 of the DER certificate, hex: what `allowed.json` and the provider compare."""
    return hashlib.sha256(cert_der).hexdigest()


def init_ca(home_path: Path) -> dict[str, Any]:
    """Create the CA (once). Returns its fingerprint and expiry; refuses to overwrite an existing CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = cluster_dir(home_path)
    if (d / "ca.key").exists():
        raise Conflict(
            f"a cluster CA already exists in {d}.",
            code="cluster_ca_exists",
            hint="Issue certificates with `botctl cluster cert issue NAME`.",
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "botctl cluster CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(
        d / "ca.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write_private(d / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
    _save_allowed(home_path, {})
    return {
        "ca": str(d / "ca.crt"),
        "fingerprint": fingerprint(cert.public_bytes(serialization.Encoding.DER)),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _load_ca(home_path: Path) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    d = cluster_dir(home_path)
    if not (d / "ca.key").exists():
        raise NotFound(
            f"no cluster CA in {d}.",
            code="cluster_ca_missing",
            hint="Create it with `botctl cluster ca init`.",
        )
    key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    return key, x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())


def issue(
    home_path: Path,
    name: str,
    *,
    days: int = DEFAULT_DAYS,
    out_dir: Path | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> dict[str, Any]:
    """Issue a certificate for `name` ("provider": the provider's server certificate; anything else: an
    edge's client certificate, added to the allow-list). Key and certificate are written 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    _check_name(name)
    if not_after is None and not 1 <= days <= 397:
        raise UsageError(
            f"--days {days}: a cluster certificate lives 1 to 397 days.",
            code="invalid_cert_days",
            hint=f"The default is {DEFAULT_DAYS}; re-issue before it expires.",
        )
    ca_key, ca_cert = _load_ca(home_path)
    now = dt.datetime.now(dt.UTC)
    start = not_before or now - dt.timedelta(minutes=5)
    end = not_after or now + dt.timedelta(days=days)
    key = ec.generate_private_key(ec.SECP256R1())
    server = name == PROVIDER_NAME
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    out = Path(out_dir) if out_dir else cluster_dir(home_path) / "certs"
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(
        out / f"{name}.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    _write_private(out / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
    fp = fingerprint(cert.public_bytes(serialization.Encoding.DER))
    info = {
        "name": name,
        "role": "provider" if server else "edge",
        "serial": format(cert.serial_number, "x"),
        "fingerprint": fp,
        "not_after": end.isoformat(),
        "cert": str(out / f"{name}.crt"),
        "key": str(out / f"{name}.key"),
        "ca": str(cluster_dir(home_path) / "ca.crt"),
    }
    if not server:
        allowed = load_allowed(home_path)
        allowed = {
            k: v for k, v in allowed.items() if v.get("name") != name
        }  # a re-issue replaces the old one
        allowed[fp] = {"name": name, "serial": info["serial"], "not_after": info["not_after"]}
        _save_allowed(home_path, allowed)
    return info


def revoke(home_path: Path, name: str) -> dict[str, Any]:
    """Remove every allow-list entry for edge `name`: the provider refuses it from the next connection."""
    _check_name(name)
    allowed = load_allowed(home_path)
    gone = {k: v for k, v in allowed.items() if v.get("name") == name}
    if not gone:
        raise NotFound(
            f"no allowed edge certificate named {name!r}.",
            code="cert_not_found",
            hint="See the names in `botctl cluster cert list`.",
        )
    _save_allowed(home_path, {k: v for k, v in allowed.items() if k not in gone})
    return {"name": name, "revoked": sorted(v["serial"] for v in gone.values())}


def allowed_path(home_path: Path) -> Path:
    return cluster_dir(home_path) / "allowed.json"


def load_allowed(home_path: Path) -> dict[str, dict[str, Any]]:
    path = allowed_path(home_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise BotctlError(
            f"{path} is not valid JSON.",
            code="cluster_allowlist_invalid",
            hint="Re-issue the edge certificates (`botctl cluster cert issue NAME`).",
        ) from None
    return data if isinstance(data, dict) else {}


def _save_allowed(home_path: Path, allowed: dict[str, dict[str, Any]]) -> None:
    _write_private(allowed_path(home_path), json.dumps(allowed, indent=1, sort_keys=True).encode())


def server_files(home_path: Path) -> tuple[Path, Path, Path]:
    """(provider.crt, provider.key, ca.crt) for `--provider-listen`; a clear error when missing."""
    d = cluster_dir(home_path)
    files = (d / "certs" / f"{PROVIDER_NAME}.crt", d / "certs" / f"{PROVIDER_NAME}.key", d / "ca.crt")
    for f in files:
        if not f.exists():
            raise NotFound(
                f"{f} is missing: the provider needs its certificate to listen with mutual TLS.",
                code="cluster_cert_missing",
                hint="Run `botctl cluster ca init` (once) and `botctl cluster cert issue provider`.",
            )
    return files


RENEW_WITHIN_DAYS = 7


def expiring(home_path: Path, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The provider's certificate and the allowed edges' that expire within RENEW_WITHIN_DAYS (or have):
    what `botctl doctor` reports. Empty when this home has no cluster CA."""
    from cryptography import x509

    d = cluster_dir(home_path)
    if not (d / "ca.crt").exists():
        return []
    now = now or dt.datetime.now(dt.UTC)
    found: list[tuple[str, str, dt.datetime]] = []
    provider = d / "certs" / f"{PROVIDER_NAME}.crt"
    if provider.exists():
        found.append(
            (
                PROVIDER_NAME,
                "provider",
                x509.load_pem_x509_certificate(provider.read_bytes()).not_valid_after_utc,
            )
        )
    for entry in load_allowed(home_path).values():
        try:
            found.append((entry["name"], "edge", dt.datetime.fromisoformat(entry["not_after"])))
        except (KeyError, TypeError, ValueError):
            continue
    soon = now + dt.timedelta(days=RENEW_WITHIN_DAYS)
    return [
        {"name": name, "role": role, "not_after": end.isoformat(), "expired": end <= now}
        for name, role, end in sorted(found, key=lambda f: f[2])
        if end <= soon
    ]
