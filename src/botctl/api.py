"""botctl's public Python API: the library the CLI is a thin layer over, for scripts and services.

    from botctl import Botctl

    with Botctl("/srv/botctl") as bc:
        bc.create_workspace("acme", plan="pro", origins=["https://shop.acme.test"])
        bc.connect("acme", "stripe", api_key=os.environ["STRIPE_KEY"])
        result = bc.run_action("acme", "stripe.list_my_invoices", visitor_email="ada@example.com")
        for record in bc.audit(limit=20):
            print(record["seq"], record["event"], record["outcome"])
        assert bc.verify_audit().ok

Every change goes through the same library calls as the CLI, in the same transactions, and is audited
with the actor given to `Botctl` (default: the operator). Errors are `BotctlError`s with a stable
`code`, a message and a hint; actions that are refused or fail raise `ActionError` (after their audit
record is written). Documented in docs/python-api.md; everything else in the package is internal.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from botctl.connectors.base import ActionError, Visitor
from botctl.errors import BotctlError, UsageError

__all__ = ["ActionError", "Botctl", "BotctlError", "Visitor"]


class Botctl:
    """One botctl home, opened for use from Python. Not thread-safe: one per thread (or process)."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        create: bool = False,
        actor: dict[str, Any] | None = None,
    ) -> None:
        """Open `home` (default: BOTCTL_HOME, else the user data dir). `create`: make the home and its master
        key on first use (like `botctl init`); otherwise a missing home is an error. The master key comes
        from the usual sources (BOTCTL_MASTER_KEY, systemd credential, keyring, master.key)."""
        from botctl.home import Home
        from botctl.session import Session

        self._app = Session(Home.resolve(home), actor=actor, create=create)
        self._app.vault  # noqa: B018 - open now: a missing home or wrong key fails here, not later

    @property
    def home(self) -> Path:
        return self._app.home.path

    def close(self) -> None:
        self._app.close()

    def __enter__(self) -> Botctl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workspaces ----------------------------------------------------------------------------------

    def workspaces(self) -> list[dict[str, Any]]:
        """Every workspace, by name: `{"id", "name", "plan", "display_name", "origins", ...}`."""
        from botctl import workspaces

        return [w.as_dict() for w in workspaces.list_all(self._app.vault.conn)]

    def workspace(self, name: str) -> dict[str, Any]:
        """One workspace; `BotctlError` with code `not_found` when there is none."""
        from botctl import workspaces

        return workspaces.get(self._app.vault.conn, name).as_dict()

    def create_workspace(
        self,
        name: str,
        *,
        plan: str = "free",
        origins: list[str] | tuple[str, ...] = (),
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """A new workspace with its own key. `plan`: free, pro or business (actions need pro or business)."""
        from botctl import workspaces

        return workspaces.create(
            self._app, name, plan=plan, origins=list(origins), display_name=display_name
        ).as_dict()

    def update_workspace(
        self,
        name: str,
        *,
        plan: str | None = None,
        origins: list[str] | None = None,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """Change a workspace's plan, allowed origins or display name (only what is given)."""
        from botctl import workspaces

        changes = {
            k: v
            for k, v in (("plan", plan), ("origins", origins), ("display_name", display_name))
            if v is not None
        }
        return workspaces.update(self._app, name, **changes).as_dict()

    def delete_workspace(self, name: str) -> bool:
        """Delete a workspace and destroy its key (crypto-shredding). Returns False while shredding is
        pending (another process holds an old snapshot of the vault; the next open finishes it)."""
        from botctl import workspaces

        workspaces.delete(self._app, name)
        return not self._app.vault.shred_pending

    # -- connections ---------------------------------------------------------------------------------

    def connections(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Connections (no secrets), of one workspace or of all."""
        from botctl import connections, workspaces

        conn = self._app.vault.conn
        ws = workspaces.get(conn, workspace) if workspace else None
        return [c.as_dict() for c in connections.list_all(conn, ws)]

    def connect(
        self,
        workspace: str,
        connector: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        access_token: str | None = None,
        config: dict[str, str] | None = None,
        sandbox: str | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Connect a tool with an API key (`api_secret` too for WooCommerce) or a vendor-issued access token.

        `config`: the connector's settings (e.g. `{"subdomain": "acme"}`); `sandbox`: the URL of a botctl
        sandbox standing in for the vendor. The credential is checked with the vendor's "who am I" call
        (`check=False` skips it) and stored encrypted; a refusal raises `BotctlError` and stores nothing.
        OAuth browser and device flows need a person: use `botctl connect` for those.
        """
        from botctl import connections, workspaces
        from botctl.secret import Secret

        ws = workspaces.get(self._app.vault.conn, workspace)
        c = connections.resolve_connector(connector)
        given = {"api_key": api_key, "api_secret": api_secret, "access_token": access_token}
        credential = {k: Secret(v) for k, v in given.items() if v}
        wanted = list(c.key_fields) if c.auth == "api_key" else ["access_token"]
        if sorted(credential) != sorted(wanted):
            raise UsageError(f"{c.vendor} connects with {' and '.join(wanted)}.", code="invalid_input")
        resolved = connections.resolve_config(c, dict(config or {}), sandbox)
        row, _replaced = connections.connect_with_secret(self._app, ws, c, resolved, credential, check=check)
        return row.as_dict()

    # -- actions -------------------------------------------------------------------------------------

    def actions(self, workspace: str) -> list[dict[str, Any]]:
        """Every action with its JSON Schema and whether this workspace can run it (`status`)."""
        from botctl import workspaces
        from botctl.actions import catalogue

        conn = self._app.vault.conn
        return catalogue(conn, workspaces.get(conn, workspace))

    def run_action(
        self,
        workspace: str,
        action: str,
        params: dict[str, Any] | None = None,
        *,
        visitor_email: str | None = None,
        visitor_sub: str | None = None,
        visitor_name: str | None = None,
    ) -> dict[str, Any]:
        """Run `action` for a customer you have verified yourself (as `botctl actions run --as-email`).

        The same path as the daemon's: plan, identity, connection, scopes, params schema, the vendor, one
        audit record. Returns `{"ok", "action", "result", "request_id"}`; raises `ActionError` (with its
        stable `code`) when refused or failed."""
        import asyncio

        from botctl.actions import run_action
        from botctl.identity import operator_email

        visitor = None
        if visitor_email:
            visitor = Visitor(
                sub=visitor_sub or visitor_email, email=operator_email(visitor_email), name=visitor_name
            )
        return asyncio.run(
            run_action(
                self._app, workspace, action, visitor=visitor, params=params or {}, actor=self._app.actor
            )
        )

    # -- audit ---------------------------------------------------------------------------------------

    def audit(
        self,
        *,
        limit: int = 20,
        workspace: str | None = None,
        event: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: str | None = None,
        until: str | None = None,
        visitor: str | None = None,
        request_id: str | None = None,
        actor: str | None = None,
        connector: str | None = None,
    ) -> list[dict[str, Any]]:
        """The latest `limit` audit records (oldest first), filtered as `botctl audit` filters them (a late
        outcome along with the unknown it resolves); `since` / `until` like `2h`, `3d` or an ISO time
        (since <= ts < until)."""
        from botctl.audit import AuditReader, Filters
        from botctl.durations import parse_since

        reader = AuditReader(self._app.home)
        try:
            return reader.latest(
                Filters(
                    workspace=workspace,
                    event=event,
                    action=action,
                    outcome=outcome,
                    visitor=visitor,
                    since=parse_since(since) if since else None,
                    until=parse_since(until, flag="until") if until else None,
                    request_id=request_id,
                    actor=actor,
                    connector=connector,
                ),
                limit,
                with_late=True,
            )
        finally:
            reader.close()

    def audit_record(self, seq: int) -> dict[str, Any]:
        """One audit record by its sequence number."""
        from botctl.audit import AuditReader

        reader = AuditReader(self._app.home)
        try:
            return reader.get(seq)
        finally:
            reader.close()

    def verify_audit(self):  # -> botctl.audit.Verdict
        """Check the whole chain (MACs, order, the checkpoint): `.ok`, `.records`, `.first_bad_seq`, `.problem`."""
        from botctl import audit

        vault = self._app.vault
        return audit.verify(self._app.home, vault.audit_key(), vault.conn)
