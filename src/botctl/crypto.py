"""Envelope encryption: AES-256-GCM everywhere, a version byte in front of every blob.

    blob = VERSION (1 byte) || nonce (12 random bytes) || ciphertext || tag (16 bytes)

* The master key (KEK) wraps each workspace key (DEK); AAD = ``botctl/v1|dek|<workspace>|<dek version>``.
* A DEK encrypts that workspace's secrets; AAD = ``botctl/v1|<workspace>|<owner>|<field>``, so a ciphertext
  copied to another row, field or tenant does not decrypt.
* The audit root key is wrapped by the KEK like a DEK (AAD ``botctl/v1|audit-root``) and the audit
  HMAC key is derived from it with HKDF (``botctl/audit/v1``); see docs/architecture.md for why it is
  not derived from the KEK directly.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from botctl.errors import DecryptError

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_PREFIX = b"botctl/v1"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def secret_aad(workspace: str, owner: str, field: str) -> bytes:
    for part in (workspace, owner, field):
        if "|" in part:
            raise ValueError("AAD parts may not contain '|'")
    return b"|".join((_PREFIX, workspace.encode(), owner.encode(), field.encode()))


def dek_aad(workspace: str, version: int) -> bytes:
    return b"|".join((_PREFIX, b"dek", workspace.encode(), str(version).encode()))


AUDIT_ROOT_AAD = _PREFIX + b"|audit-root"


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return bytes([VERSION]) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != VERSION:
        raise DecryptError("ciphertext has an unknown format version or is truncated")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptError(
            "a stored secret failed to authenticate (wrong master key, or the vault was tampered with)"
        ) from None


def wrap_key(kek: bytes, key: bytes, aad: bytes) -> bytes:
    return encrypt(kek, key, aad)


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    key = decrypt(kek, wrapped, aad)
    if len(key) != KEY_BYTES:
        raise DecryptError("unwrapped key has the wrong length")
    return key


def hkdf(key: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869), no salt."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def key_check_value(kek: bytes) -> str:
    """A public fingerprint that tells whether a master key is the one this vault was made with."""
    return hmac.new(kek, b"botctl/v1|kcv", hashlib.sha256).hexdigest()[:32]
