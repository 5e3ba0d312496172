"""What a changing step runs: library calls, each audited with the Session's actor. Built by the planners;
run later by `execute` (never on a dry run). Errors are raised in the file's words."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError
from botctl.provision.secrets_out import write_secret
from botctl.provision.spec import ConnSpec, KeySpec
from botctl.provision.steps import Result
from botctl.provision.tomlfile import in_file_words

if TYPE_CHECKING:
    from botctl.session import Session
    from botctl.workspaces import Workspace

GetWs = Callable[[], "Workspace"]


def connect(app: Session | None, get_ws: GetWs, cs: ConnSpec) -> Callable[[], Any]:
    """Validate with the vendor and save, as `botctl connect` does with an API key or token
    (`connections.connect_with_secret`: a refusal is audited as `connection.failed`, nothing stored)."""

    def run() -> Any:
        from botctl import connections

        assert app is not None
        try:
            return connections.connect_with_secret(app, get_ws(), cs.connector, cs.config, cs.credential)[0]
        except BotctlError as exc:
            raise _connect_error(exc, cs) from None

    return run


def _connect_error(exc: BotctlError, cs: ConnSpec) -> BotctlError:
    """The library's error (same class and code), its settings named as the connection's keys; an account
    the vendor does not know points at the keys that chose it (`subdomain`, `shop`, ... of this table)."""
    fields = [f for f in cs.connector.config_fields if f in cs.config]
    message, hint, _ = in_file_words(exc, {f: f for f in fields} | {"sandbox": "sandbox"})
    if exc.code == "wrong_account" and fields:
        message, hint = f"{message.rstrip('.')}; check {' / '.join(fields)} at {cs.where}.", None
    exc.args, exc.message, exc.hint = (message,), message, hint
    return exc


def disconnect(app: Session | None, get_ws: GetWs, have: Any) -> Callable[[], Any]:
    """Revoke where the vendor can, then delete (even if revocation failed), as `botctl disconnect` does."""

    def run() -> Any:
        from botctl import connections, oauth

        assert app is not None
        ws = get_ws()
        connector = connections.resolve_connector(have.connector)
        try:
            revoked = asyncio.run(oauth.revoke(app, ws, have, connector))["revoked"]
        except BotctlError as exc:
            revoked = f"failed: {exc.code}"
        connections.delete(app, ws, have, detail={"revoked": revoked, "via": "apply --prune"})

    return run


def add_key(app: Session | None, get_ws: GetWs, ks: KeySpec) -> Callable[[], Any]:
    def run() -> Any:
        from botctl import identity

        return identity.add_public_key(
            app, get_ws(), alg=ks.alg, pem=ks.pem, jwks_url=ks.jwks_url, kid=ks.kid
        )

    return run


def replace_key(app: Session | None, get_ws: GetWs, ks: KeySpec) -> Callable[[], Any]:
    add = add_key(app, get_ws, ks)

    def run() -> Any:
        from botctl import identity

        identity.remove_key(app, get_ws(), ks.kid)
        return add()

    return run


def rotate_hs256(
    app: Session | None, get_ws: GetWs, name: str, secrets_out: Path | None, result: Result | None
) -> Callable[[], Any]:
    """A new HS256 secret: written to the secrets file, or kept in `result` to be shown once."""

    def run() -> Any:
        from botctl import identity

        key, secret = identity.rotate(app, get_ws())
        entry = {"kid": key.kid, "alg": "HS256", "hs256_secret": secret.reveal()}
        written = False
        if secrets_out is not None:
            try:
                write_secret(secrets_out, name, entry)
                written = True
            except (OSError, ValueError):  # the secret exists now: show it rather than lose it
                written = False
        if not written and result is not None:
            result.secrets[name] = entry
        return key

    return run


def add_docs(app: Session | None, get_ws: GetWs, paths: list[Path], base: Path) -> Callable[[], Any]:
    """One `knowledge.add` for all of a workspace's changed documents, however many steps share it."""
    batch: dict[str, Any] = {}

    def run() -> Any:
        from botctl import knowledge

        if "report" not in batch:  # read again, under the same rules as when the file was checked
            batch["report"] = knowledge.add(
                app, get_ws(), paths, within=base, label=f"the file's folder ({base})"
            )
        return batch["report"]

    return run
