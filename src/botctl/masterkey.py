"""Where the master key (KEK) comes from, in this order (docs/design.md §2):

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


RESTORE_HINT = (
    "A new key cannot open the existing vault: restore the key this vault was set up with "
    "(from your backup or password manager)."
)


def decode(text: str, *, origin: str, vault_exists: bool = False) -> bytes:
    """`vault_exists`: the key is for a vault that exists, so a bad one is restored, never regenerated."""
    raw = text.strip()
    try:
        key = base64.b64decode(
            raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None, validate=True
        )
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise MasterKeyError(
            f"{origin} is not a base64-encoded {KEY_BYTES}-byte key.",
            hint=RESTORE_HINT if vault_exists else "Generate one with: openssl rand -base64 32",
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
    exists = home.exists()
    env = os.environ.get(ENV_VAR)
    if env:
        return MasterKey(decode(env, origin=ENV_VAR, vault_exists=exists), "env", ENV_VAR)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = os.path.join(creds, SYSTEMD_CREDENTIAL)
        if os.path.exists(path):
            with open(path, "rb") as fh:
                data = fh.read()
            key = (
                data
                if len(data) == KEY_BYTES
                else decode(data.decode("ascii", "replace"), origin=path, vault_exists=exists)
            )
            return MasterKey(key, "systemd", path)
    if not keyring_disabled():
        try:
            stored = keyring_get(_keyring_user(home))
        except Exception:
            stored = None
        if stored:
            return MasterKey(
                decode(stored, origin="the OS keyring entry", vault_exists=exists),
                "keyring",
                f"keyring:{KEYRING_SERVICE}/{_keyring_user(home)}",
            )
    path = home.master_key_file
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise MasterKeyError(
                f"{path} is readable by other users (mode {mode:o}); refusing to use it.",
                hint=f"Run: chmod 600 {path}",
            )
        key = decode(path.read_text(), origin=str(path), vault_exists=exists)
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
            raise MasterKeyError(
                f"cannot use the OS keyring: {reason}.",
                hint="Use --key-store file, or set BOTCTL_MASTER_KEY.",
            )
    home.ensure()
    write_private_file(home.master_key_file, (encode(key) + "\n").encode())
    print(FILE_WARNING.format(path=home.master_key_file), file=sys.stderr)
    return MasterKey(key, "file", str(home.master_key_file))


# Rotation (Vault.rotate_master_key) writes the new key beside the old one first ("pending"), then
# re-wraps everything and records the rotation in one vault transaction, then promotes the pending key.
#
# * keyring / file sources: the pending key is the keyring entry `…:next` or `<home>/master.key.next`;
#   promotion replaces the stored key with it.
# * env / systemd sources: botctl cannot change BOTCTL_MASTER_KEY or a credential. A key botctl
#   generates is kept in `<home>/master.key.next` (0600) and printed before anything is re-wrapped;
#   the file stays until the key source holds the new key, and until then the vault is opened with it
#   (with a warning). A key the operator supplied (--new-key-stdin / --new-key-file) is not written down.
#
# Opening the vault settles what an interrupted rotation left (`Vault._load_master_key`, under the
# vault's write lock, which a rotation holds from before it stores its pending key until its COMMIT):
# a pending key that does not open the vault never committed and is deleted; one that opens it while
# the source's key does not is promoted (keyring/file) or used (env/systemd); one that the source
# already holds too is deleted. No moment exists when none of the keys the operator holds opens the vault.

ROTATION_SOURCES_KEPT = ("keyring", "file")  # sources botctl can update itself


def pending_path(home: Home):
    return home.path / "master.key.next"


def pending_location(home: Home, current: MasterKey) -> str:
    """Where the pending key of a rotation from `current`'s source lives (never the key itself)."""
    if current.source == "keyring":
        return f"keyring:{KEYRING_SERVICE}/{_keyring_user(home)}:next"
    return str(pending_path(home))


def source_description(current: MasterKey) -> str:
    """The place the operator updates by hand, for env and systemd sources."""
    if current.source == "env":
        return ENV_VAR
    if current.source == "systemd":
        return f"the systemd credential {SYSTEMD_CREDENTIAL} ({current.location})"
    return current.location


def store_pending(home: Home, current: MasterKey, new_key: bytes) -> str:
    """Keep `new_key` beside `current` until the rotation is settled; returns where (no key)."""
    if current.source == "keyring":
        keyring_set(_keyring_user(home) + ":next", encode(new_key))
    else:
        write_private_file(pending_path(home), (encode(new_key) + "\n").encode())
    return pending_location(home, current)


def discard_pending(home: Home, current: MasterKey) -> None:
    """Remove the pending key (a rotation that did not commit, or one the source already holds)."""
    if current.source == "keyring":
        keyring_delete(_keyring_user(home) + ":next")
    else:
        pending_path(home).unlink(missing_ok=True)


def promote_pending(home: Home, current: MasterKey, new_key: bytes) -> MasterKey:
    """After the COMMIT: the new key replaces the old one where botctl keeps it (keyring/file).

    env/systemd: nothing botctl can replace; master.key.next stays until the source holds the new key.
    """
    if current.source == "keyring":
        keyring_set(_keyring_user(home), encode(new_key))
        keyring_delete(_keyring_user(home) + ":next")
        return MasterKey(new_key, "keyring", current.location)
    if current.source == "file":
        try:
            os.replace(pending_path(home), home.master_key_file)
        except FileNotFoundError:
            # Another process opening the vault meanwhile promoted it already; anything else is an error.
            if decode(home.master_key_file.read_text(), origin=str(home.master_key_file)) != new_key:
                raise
        return MasterKey(new_key, "file", current.location)
    return MasterKey(new_key, current.source, current.location)


@dataclass(frozen=True)
class Pending:
    """A pending key found beside the master key: where it is, never shown."""

    key: bytes
    location: str

    def __repr__(self) -> str:
        return f"Pending(location={self.location!r})"


def recover_pending(home: Home, current: MasterKey) -> Pending | None:
    """The pending key left by a rotation, if any (an unreadable one counts as none)."""
    try:
        if current.source == "keyring":
            text = keyring_get(_keyring_user(home) + ":next")
        elif pending_path(home).exists():
            text = pending_path(home).read_text()
        else:
            return None
    except Exception:
        return None
    if not text:
        return None
    try:
        return Pending(decode(text, origin="the pending master key"), pending_location(home, current))
    except MasterKeyError:
        return None


@dataclass(frozen=True)
class PendingRotation:
    """What a pending key means for this vault (for `vault status`, `doctor`, and the open's warning).

    state: ``committed`` — the rotation committed and the pending key is the one that opens the vault;
    ``stale`` — it never committed (the current key still opens the vault); ``superseded`` — the
    source already holds it. Only `committed` needs the operator (for env/systemd sources).
    """

    state: str
    location: str
    source: str
    source_location: str

    @property
    def operator_must_act(self) -> bool:
        return self.state == "committed" and self.source not in ROTATION_SOURCES_KEPT

    @property
    def message(self) -> str:
        if self.state == "stale":
            return (
                f"a pending master key from a rotation that never committed is in {self.location}; "
                "it is deleted the next time botctl opens the vault"
            )
        if self.state == "superseded":
            return (
                f"a leftover pending master key is in {self.location} (the key source already holds it); "
                "it is deleted the next time botctl opens the vault"
            )
        if not self.operator_must_act:
            return (
                f"a master-key rotation was committed but not finished; the new key in {self.location} "
                "is moved into place the next time botctl opens the vault"
            )
        return (
            f"{self.source_location} still holds the previous master key; a rotation was committed and "
            f"botctl opens the vault with the new key in {self.location}"
        )

    @property
    def what_to_do(self) -> str:
        if self.operator_must_act:
            return (
                f"Put the key from {self.location} in {self.source_location}; botctl deletes the file once "
                "it does. Do not delete it before."
            )
        return "Nothing: any command that opens the vault settles it (e.g. botctl audit verify)."

    def as_dict(self) -> dict[str, str]:
        return {
            "state": self.state,
            "location": self.location,
            "message": self.message,
            "what_to_do": self.what_to_do,
        }


def inspect_pending(
    home: Home, found: MasterKey | None, kcv: str | None
) -> tuple[PendingRotation | None, bool]:
    """(what a pending key beside `found` means, does `found` or the pending key open the vault).

    Reads only; `Vault._load_master_key` is what settles it.
    """
    from botctl.crypto import key_check_value

    if found is None:
        return None, False
    found_opens = kcv is not None and key_check_value(found.key) == kcv
    pending = recover_pending(home, found)
    if pending is None:
        return None, found_opens
    pending_opens = kcv is not None and key_check_value(pending.key) == kcv
    if found_opens:
        state = "superseded" if pending_opens else "stale"
    elif pending_opens:
        state = "committed"
    else:
        state = "stale"
    rotation = PendingRotation(state, pending.location, found.source, source_description(found))
    return rotation, found_opens or pending_opens
