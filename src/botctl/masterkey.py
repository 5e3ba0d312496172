"""Where the master key (KEK) comes from, in this order (DESIGN.md "Keys"):

1. ``BOTCTL_MASTER_KEY`` — base64 of 32 bytes, for CI and containers;
2. the systemd credential ``$CREDENTIALS_DIRECTORY/botctl-master-key`` (``LoadCredential=``);
3. the OS keyring (``keyring``), with a short timeout so a hung D-Bus never hangs botctl;
4. ``<home>/master.key`` (0600), with a one-line warning that a keyring is safer.

``BOTCTL_NO_KEYRING=1`` skips the keyring (headless servers, tests).
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
import threading
from dataclasses import dataclass
from typing import Literal

from botctl.crypto import KEY_BYTES
from botctl.errors import MasterKeyError
from botctl.home import Home, write_private_file

Source = Literal["env", "systemd", "keyring", "file"]
ENV_VAR = "BOTCTL_MASTER_KEY"
SYSTEMD_CREDENTIAL = "botctl-master-key"
KEYRING_SERVICE = "botctl"
KEYRING_TIMEOUT_S = 3.0
FILE_WARNING = (
    "warning: the master key is in a plain file ({path}); an OS keyring or BOTCTL_MASTER_KEY is safer"
)


@dataclass(frozen=True)
class MasterKey:
    key: bytes
    source: Source
    location: str  # human description: env var name, file path, keyring entry

    def __repr__(self) -> str:
        return f"MasterKey(source={self.source!r}, location={self.location!r})"


def encode(key: bytes) -> str:
    return base64.b64encode(key).decode()


def decode(text: str, *, origin: str) -> bytes:
    raw = text.strip()
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise MasterKeyError(
            f"{origin} is not a base64-encoded {KEY_BYTES}-byte key.",
            hint="Generate one with: openssl rand -base64 32",
        )
    return key


def _keyring_user(home: Home) -> str:
    return f"master-key:{home.path}"


def keyring_disabled() -> bool:
    return os.environ.get("BOTCTL_NO_KEYRING", "").lower() in {"1", "true", "yes"}


def _with_timeout(fn, *args):
    """Run a keyring call in a daemon thread; give up after KEYRING_TIMEOUT_S (gh does the same)."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = fn(*args)
        except Exception as exc:  # any backend failure means "no usable keyring"
            result["error"] = exc

    t = threading.Thread(target=target, daemon=True, name="botctl-keyring")
    t.start()
    t.join(KEYRING_TIMEOUT_S)
    if t.is_alive():
        raise TimeoutError("keyring did not answer in time")
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


def keyring_get(name: str) -> str | None:
    import keyring

    return _with_timeout(keyring.get_password, KEYRING_SERVICE, name)  # type: ignore[return-value]


def keyring_set(name: str, value: str) -> None:
    import keyring

    _with_timeout(keyring.set_password, KEYRING_SERVICE, name, value)


def keyring_delete(name: str) -> None:
    import keyring

    try:
        _with_timeout(keyring.delete_password, KEYRING_SERVICE, name)
    except Exception:  # already gone is fine
        pass


def keyring_usable() -> tuple[bool, str]:
    """Can we store and read a secret in the OS keyring? (`reason` says why not.)"""
    if keyring_disabled():
        return False, "disabled by BOTCTL_NO_KEYRING"
    try:
        import keyring
        from keyring.backends import fail

        backend = _with_timeout(keyring.get_keyring)
        # fail.Keyring and null.Keyring have priority <= 0: nothing would be stored anywhere.
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return False, "no keyring backend is available"
        return True, f"{type(backend).__module__}.{type(backend).__name__}"
    except Exception as exc:
        return False, f"keyring error: {type(exc).__name__}"


def find(home: Home, *, warn: bool = False) -> MasterKey | None:
    """The first master key source that has a key, or None when none has."""
    env = os.environ.get(ENV_VAR)
    if env:
        return MasterKey(decode(env, origin=ENV_VAR), "env", ENV_VAR)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = os.path.join(creds, SYSTEMD_CREDENTIAL)
        if os.path.exists(path):
            with open(path, "rb") as fh:
                data = fh.read()
            key = data if len(data) == KEY_BYTES else decode(data.decode("ascii", "replace"), origin=path)
            return MasterKey(key, "systemd", path)
    if not keyring_disabled():
        try:
            stored = keyring_get(_keyring_user(home))
        except Exception:
            stored = None
        if stored:
            return MasterKey(decode(stored, origin="the OS keyring entry"), "keyring", f"keyring:{KEYRING_SERVICE}/{_keyring_user(home)}")
    path = home.master_key_file
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise MasterKeyError(
                f"{path} is readable by other users (mode {mode:o}); refusing to use it.",
                hint=f"Run: chmod 600 {path}",
            )
        key = decode(path.read_text(), origin=str(path))
        if warn:
            print(FILE_WARNING.format(path=path), file=sys.stderr)
        return MasterKey(key, "file", str(path))
    return None


def store_new(home: Home, key: bytes, *, prefer: Literal["auto", "keyring", "file"] = "auto") -> MasterKey:
    """Store a freshly generated key in the keyring (when usable) or the 0600 file."""
    if prefer in ("auto", "keyring"):
        ok, reason = keyring_usable()
        if ok:
            keyring_set(_keyring_user(home), encode(key))
            return MasterKey(key, "keyring", f"keyring:{KEYRING_SERVICE}/{_keyring_user(home)}")
        if prefer == "keyring":
            raise MasterKeyError(f"cannot use the OS keyring: {reason}.", hint="Use --key-store file, or set BOTCTL_MASTER_KEY.")
    home.ensure()
    write_private_file(home.master_key_file, (encode(key) + "\n").encode())
    print(FILE_WARNING.format(path=home.master_key_file), file=sys.stderr)
    return MasterKey(key, "file", str(home.master_key_file))


# Rotation writes the new key beside the old one first ("pending"), commits the re-wrapped vault,
# then promotes it. A crash in between leaves a vault that the pending key opens; `recover_pending`
# finds it. No moment exists when neither stored key opens the vault.

def pending_path(home: Home):
    return home.path / "master.key.next"


def store_pending(home: Home, current: MasterKey, new_key: bytes) -> None:
    if current.source == "keyring":
        keyring_set(_keyring_user(home) + ":next", encode(new_key))
    elif current.source == "file":
        write_private_file(pending_path(home), (encode(new_key) + "\n").encode())


def promote_pending(home: Home, current: MasterKey, new_key: bytes) -> MasterKey:
    if current.source == "keyring":
        keyring_set(_keyring_user(home), encode(new_key))
        keyring_delete(_keyring_user(home) + ":next")
        return MasterKey(new_key, "keyring", current.location)
    if current.source == "file":
        os.replace(pending_path(home), home.master_key_file)
        return MasterKey(new_key, "file", current.location)
    return MasterKey(new_key, current.source, current.location)


def recover_pending(home: Home, current: MasterKey) -> bytes | None:
    """The pending key from an interrupted rotation, if any."""
    try:
        if current.source == "keyring":
            text = keyring_get(_keyring_user(home) + ":next")
        elif current.source == "file" and pending_path(home).exists():
            text = pending_path(home).read_text()
        else:
            return None
    except Exception:
        return None
    return decode(text, origin="pending master key") if text else None
