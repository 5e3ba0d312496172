"""Errors that reach a user: a stable code, one or two lines, a documented exit status.

Exit statuses (also in README "Exit codes"):

    0   ok
    1   failure (anything not listed below)
    2   usage: bad option or argument value
    3   not found: unknown workspace, connection, audit record
    4   conflict: already exists
    5   master key missing, wrong, or unusable
    6   home written by a newer botctl (schema too new)
    7   apply: partial failure (some objects failed; the rest were applied)
    10  audit verify: the chain is broken (edited, deleted, reordered, inserted or truncated records),
        or does not reach an anchor (`--anchor`, `--expect-head`)
    11  audit_chain_broken: nothing was written because the log's head disagrees with its checkpoint
        (the change rolled back); `botctl audit seal-break` records the break and lets writes resume
    20  the vendor rejected the credential (bad key, revoked, missing permission)
    21  the connection needs re-authorisation (reconnect it)
    22  the vendor could not be reached or failed (network, timeout, 5xx, rate limit): try again later
    23  an action was refused or failed (`botctl actions run`; the JSON error carries the code)
    24  OAuth: the user (or the authorization server) denied the authorization
    25  OAuth: the callback's state or issuer did not match, or was replayed
    26  OAuth: timed out waiting for the browser callback, or the device code expired
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_MASTER_KEY = 5
EXIT_SCHEMA = 6
EXIT_AUDIT_BROKEN = 10
EXIT_AUDIT_CHAIN_BROKEN = 11
EXIT_REJECTED = 20
EXIT_NEEDS_REAUTH = 21
EXIT_TRANSIENT = 22
EXIT_ACTION = 23
EXIT_INTERRUPTED = 130


class BotctlError(Exception):
    """An error with a stable `code`, a one-line message and an optional hint (what to do)."""

    code = "error"
    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code


class UsageError(BotctlError):
    code = "invalid_input"
    exit_code = EXIT_USAGE


class NotFound(BotctlError):
    code = "not_found"
    exit_code = EXIT_NOT_FOUND


class Conflict(BotctlError):
    code = "conflict"
    exit_code = EXIT_CONFLICT


class MasterKeyError(BotctlError):
    code = "master_key"
    exit_code = EXIT_MASTER_KEY


class SchemaTooNew(BotctlError):
    code = "schema_too_new"
    exit_code = EXIT_SCHEMA


class DecryptError(BotctlError):
    """A ciphertext did not authenticate: wrong key, moved to another row, or tampered."""

    code = "decrypt_failed"
    exit_code = EXIT_MASTER_KEY


class AuditChainBroken(BotctlError):
    """A write refused: the audit log's head disagrees with the checkpoint in vault.db (tail deleted or
    rewritten, checkpoint edited). Chaining onto it would let the next checkpoint cover the damage."""

    code = "audit_chain_broken"
    exit_code = EXIT_AUDIT_CHAIN_BROKEN


class CredentialRejected(BotctlError):
    code = "credential_rejected"
    exit_code = EXIT_REJECTED


class NeedsReauth(BotctlError):
    code = "needs_reauth"
    exit_code = EXIT_NEEDS_REAUTH


class Transient(BotctlError):
    code = "upstream_unavailable"
    exit_code = EXIT_TRANSIENT


class ActionFailed(BotctlError):
    """An action refused or failed; `code` is the action engine's stable code (forbidden, ...)."""

    exit_code = EXIT_ACTION
