"""The provider process's state (`app.state.provider`): the Session (vault + group-committed audit), the vendor
connection pool, identity verification, the background refresh loop and its counters."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from botctl.connectors.base import Visitor

log = logging.getLogger("botctl.provider")
GREETING = "Hi! How can we help?"
# "Talk to a person" opens a ticket with the first of these the workspace can run.
HANDOFF_ACTIONS = ("zendesk.create_ticket", "freshdesk.create_ticket")


def _seconds(var: str, default: float) -> float:
    """A positive number of seconds from the environment, else `default` (a typo must not stop the provider)."""
    try:
        value = float(os.environ.get(var, default))
    except ValueError:
        value = default
    if not 0.05 <= value <= 86400:
        value = default
    if value != default:
        log.info("%s=%s", var, value)
    return value


class Provider:
    """State of one provider process: the Session (vault + group-committed audit), counters, refresh loop."""

    def __init__(
        self, home_path: str, *, refresh_interval: float = 30.0, refresh_margin: float = 300.0
    ) -> None:
        from botctl.home import Home
        from botctl.session import Session

        self.app = Session(Home.resolve(home_path), actor={"type": "system"}, create=False)
        self.app.vault  # noqa: B018 - open now: a wrong or missing master key fails the start, not a request
        os.environ.pop("BOTCTL_MASTER_KEY", None)  # read once: nothing this process starts inherits it
        self.app.use_group_commit()
        from botctl.audit.shipping import Shipper

        # Audit sinks and alerts: read after commit on their own thread (never in the write path).
        committer = self.app._committer
        self.shipper = Shipper(
            self.app.home,
            self.app.vault.audit_key(),
            chain_state=committer.chain_state,
            poll=_seconds("BOTCTL_SHIP_POLL_S", 2.0),
            anchor_every=_seconds("BOTCTL_SHIP_ANCHOR_S", 60.0),
            verify_every=_seconds("BOTCTL_AUDIT_VERIFY_EVERY_S", 3600.0),
        ).start()
        committer.on_commit = self.shipper.wake
        from botctl.audit import alerting

        try:
            if alerting.provider_started(self.app.home, os.getpid()):
                log.warning("the previous provider did not stop cleanly: provider.restarted alert raised")
        except Exception:  # the alert must not stop the provider it is about
            log.exception("could not check how the previous provider stopped")
        import httpx

        # Keep-alive connections to the vendors, shared by every action (credentials are injected per
        # request by each action's own VendorTransport wrapped around this pool).
        self.app.vendor_pool = httpx.AsyncHTTPTransport(
            retries=0, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
        )
        from botctl.provider.answers import Answers

        self.answers = Answers(self.app.home)  # knowledge answers, on their own thread and connection
        self.started = time.time()
        self.refresh_interval = refresh_interval
        self.refresh_margin = refresh_margin
        # The background loop's own runs (and runs that raised); refresh attempts are counted by the
        # library wherever they are made, the loop's and the actions' alike (`refresh_report`).
        self.refresh_stats: dict[str, Any] = {"runs": 0, "errors": 0, "last_run": None}
        self._refresh_task: asyncio.Task | None = None
        self._feedback_key: bytes | None = None

    # -- lookups (fresh per request: the CLI may change the vault while the daemon runs) ----------

    def workspace(self, name: str):  # -> Workspace | None
        from botctl import workspaces

        return workspaces.find(self.app.vault.conn, name)

    def available(self, ws) -> list[dict[str, Any]]:  # noqa: ANN001
        """The actions this workspace can run now (plan allows, connection active): the one catalogue."""
        from botctl.actions import catalogue
        from botctl.provider.wording import for_visitor

        keep = ("name", "connector", "vendor", "category", "description", "customer_specific", "params")
        return [
            for_visitor({k: a[k] for k in keep})
            for a in catalogue(self.app.vault.conn, ws)
            if a["status"] == "available"
        ]

    def widget_config(self, ws) -> dict[str, Any]:  # noqa: ANN001
        from botctl import widget_settings

        actions = self.available(ws)
        settings = widget_settings.get(self.app.vault.conn, ws)
        names = {a["name"] for a in actions}
        helpdesk = next((n for n in HANDOFF_ACTIONS if n in names), None)
        return {
            "workspace": ws.name,
            "display_name": ws.display_name or ws.name,
            "greeting": GREETING,
            "actions": {
                "anonymous": [a["name"] for a in actions if not a["customer_specific"]],
                "signed_in": [a["name"] for a in actions if a["customer_specific"]],
            },
            "features": {"chat": True, "actions": ws.actions_allowed, "feedback": True, "handoff": True},
            # The site's look (checked again by the widget): accent, logo, locale, when set.
            "theme": {k: settings[k] for k in ("accent", "logo", "locale") if k in settings},
            # "Talk to a person": the help desk's ticket action (run as any action: identity, audit), or
            # the operator's words on how to reach support when none is connected.
            "handoff": {"action": helpdesk, "contact": settings.get("support_contact")},
        }

    def feedback_key(self) -> bytes:
        from botctl.feedback import feedback_key

        if self._feedback_key is None:
            self._feedback_key = feedback_key(self.app.vault.audit_key())
        return self._feedback_key

    # -- identity -----------------------------------------------------------------------------------

    async def verify(self, ws, token: str | None, use: str = "widget") -> tuple[Visitor | None, str | None]:  # noqa: ANN001
        """(visitor, None) for a good token, (None, None) without one, (None, reason) for a bad one. `use`:
        what the token must be signed for ("mcp" on the MCP endpoint only; botctl.identity.verify.USES)."""
        if token is None:
            return None, None
        from botctl.identity import IdentityError, Verifier

        try:
            # Awaited: a JWKS fetch runs on its own thread, never on this loop (other tenants).
            return await Verifier(self.app, ws).averify(token, use=use), None
        except IdentityError as exc:
            return None, exc.reason

    # -- refresh loop -------------------------------------------------------------------------------

    async def refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self.refresh_once()
            await self.expire_confirmations()

    async def expire_confirmations(self) -> None:
        """MCP confirmations that expired unanswered: on record (botctl.mcp.confirmations.expire_due)."""
        from botctl.mcp.confirmations import expire_due

        try:
            await expire_due(self.app)
        except Exception:
            log.exception("recording expired confirmations failed")

    async def refresh_once(self) -> None:
        try:
            from botctl import oauth
        except ImportError:
            return
        fn = getattr(oauth, "refresh_due", None)
        if fn is None:
            return
        self.refresh_stats["runs"] += 1
        self.refresh_stats["last_run"] = time.time()
        try:
            results = await fn(self.app, margin_s=self.refresh_margin)
        except Exception:
            log.exception("refresh run failed")
            self.refresh_stats["errors"] += 1
            return
        del results  # each refresh attempt is counted where it is made (oauth.refresh_attempts)

    def refresh_report(self) -> dict[str, Any]:
        """The loop's runs plus every refresh attempt this process made, by connector and result (the
        loop's and the on-demand ones before an action or after a vendor's 401)."""
        from botctl import oauth

        attempts = oauth.refresh_attempts()
        return {
            **self.refresh_stats,
            "refreshed": sum(n for (_, result), n in attempts.items() if result == "ok"),
            "failed": sum(n for (_, result), n in attempts.items() if result == "failed"),
            "attempts": [{"connector": c, "result": r, "count": n} for (c, r), n in sorted(attempts.items())],
        }

    def connection_states(self) -> list[dict[str, str]]:
        from botctl import connections

        return [
            {"workspace": c.workspace, "connector": c.connector, "state": c.status}
            for c in connections.list_all(self.app.vault.conn)
        ]

    def close(self) -> None:
        self.answers.close()
        self.shipper.close()
        from botctl.audit import alerting

        alerting.provider_stopped(self.app.home)
        self.app.close()

    async def aclose(self) -> None:
        if self.app.vendor_pool is not None:
            await self.app.vendor_pool.aclose()
        self.close()
