"""`Session`: the home, the vault and the audit writer of one botctl invocation, opened lazily.

(It was `botctl.app.App`; "app" now means only a web app — Starlette's — a typer command group or
an operator's OAuth app. Callers still name the object `app` in places.)

Library functions that change security state take a `Session` and call `app.audit(...)` inside their
vault transaction, so a change and its audit record stand or fall together: if the audit append
fails, the change rolls back (fail closed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botctl.home import Home
from botctl.vault import Vault

if TYPE_CHECKING:
    from botctl.audit.writer import Guard


class Session:
    def __init__(
        self, home: Home, *, actor: dict[str, Any] | None = None, create: bool = True, key_store: str = "auto"
    ) -> None:
        from botctl.audit import operator_actor

        self.home = home
        self.actor = actor or operator_actor()
        self._create = create
        self._key_store = key_store
        self._vault: Vault | None = None
        self.initialized_now = False  # this invocation created the vault's keys (first use)
        self._writer = None
        self._committer = None  # set by the daemon's provider: group-committed audit appends
        self.vendor_pool = None  # set by the provider: one keep-alive pool for all vendor calls
        self._node: str | None | bool = False  # not looked up yet

    @property
    def node(self) -> str | None:
        """This node's name on a PostgreSQL home (botctl/nodes.py); None on SQLite (one machine)."""
        if self._node is False:
            from botctl import store

            if store.database_url(self.home) is None:
                self._node = None
            else:
                from botctl import nodes

                self._node = nodes.configured(self.home.path)
        return self._node  # type: ignore[return-value]

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            self._vault = Vault.open(self.home, create=self._create, key_store=self._key_store)
            if self._vault.just_initialized:
                self._vault.just_initialized = False
                self.initialized_now = True
                self.audit(
                    "vault.initialized",
                    detail={
                        "key_source": self._vault.master.source,
                        "schema": self._vault.status()["schema_version"],
                    },
                )
        return self._vault

    @property
    def writer(self):
        from botctl.audit import AuditWriter

        if self._writer is None:
            self._writer = AuditWriter(self.home, self.vault.audit_key(), self.vault.conn)
        return self._writer

    def audit(self, event: str, **fields: Any) -> dict[str, Any]:
        from botctl.audit import make_record

        if fields.get("actor") is None:
            fields["actor"] = self.actor
        if self.node is not None:
            fields.setdefault("node", self.node)
        if self._committer is not None:
            return self._committer.append(make_record(event, **fields))  # type: ignore[return-value]
        return self.writer.append(make_record(event, **fields))  # type: ignore[return-value]

    def use_group_commit(self) -> None:
        """Route audit appends through a GroupCommitter with its own connections (the daemon's mode)."""
        from botctl import store
        from botctl.audit import AuditWriter, GroupCommitter

        if self._committer is None:
            writer = AuditWriter(self.home, self.vault.audit_key(), store.open_vault(self.home))
            self._committer = GroupCommitter(writer)

    async def aaudit(self, event: str, **fields: Any) -> dict[str, Any]:
        """`audit` for async callers: awaits durability without blocking the event loop when grouped."""
        rec = await self.aaudit_if(event, None, **fields)
        assert rec is not None  # no guard: always written
        return rec

    async def aaudit_if(self, event: str, guard: Guard | None, **fields: Any) -> dict[str, Any] | None:
        """`aaudit` under `guard` (botctl.audit.writer.Guard), run in the record's own transaction: the
        record is written only if the guard says so (None otherwise), and the guard's change commits with
        it (botctl/intents.py: a write's outcome clears its intent, if it is still pending)."""
        from botctl.audit import make_record

        if fields.get("actor") is None:
            fields["actor"] = self.actor
        if self.node is not None:
            fields.setdefault("node", self.node)
        if self._committer is not None:
            return await self._committer.append_async(make_record(event, **fields), guard=guard)
        return self.writer.append(make_record(event, **fields), guard=guard)

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()
            self._committer._writer.close()
            self._committer._writer._vault.close()
        if self._writer is not None:
            self._writer.close()
        if self._vault is not None:
            self._vault.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
