"""Connector tests run against the real sandbox over loopback: no mocks of our own code.

`h` (a `Harness`) builds a vendor client exactly as the engine will (`build_client` with the
sandbox as base URL and the sandbox's seeded credentials) and runs handlers with a verified
visitor. The fake `sleep` records the transport's waits instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from botctl.connectors import registry
from botctl.connectors.base import ActionContext, ActionError, Visitor
from botctl.connectors.http import build_client, upstream_statuses
from botctl.connectors.urls import sandbox_url_for
from botctl.sandbox.vendors import get as sandbox_vendor
from botctl.secret import Secret

ADA = Visitor(sub="site-user-ada", email="ada@example.com", name="Ada Lovelace")
GRACE = Visitor(sub="site-user-grace", email="grace@example.com", name="Grace Hopper")
LINUS = Visitor(sub="site-user-linus", email="linus@example.com", name="Linus Torvalds")

# Each connector's settings for the sandbox's seeded tenant, as its sandbox vendor declares them.
CONFIG: dict[str, dict[str, str]] = {
    c.name: dict(sandbox_vendor(c.name).connect_config) for c in registry.all_connectors()
}


def credential_for(creds: Mapping[str, Any], name: str, *, limited: bool = False) -> dict[str, Secret]:
    """The credential a connection would store, from the sandbox's `connect` block (`limited`: the
    vendor's narrower credential)."""
    plan = creds[name]["connect"]
    fields = plan["limited" if limited else "credential"]
    assert fields, (name, "no limited credential in the sandbox")
    return {k: Secret(v) for k, v in fields.items()}


@dataclass
class Run:
    result: Any = None
    error: ActionError | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


class Harness:
    def __init__(self, sb: Any) -> None:
        self.sb = sb
        self.creds = sb.credentials()
        self.seed = sb.seed()

    def base_url(self, name: str) -> str:
        return sandbox_url_for(registry.get(name), CONFIG[name], self.sb.url)

    def credential(self, name: str, *, limited: bool = False) -> dict[str, Secret]:
        return credential_for(self.creds, name, limited=limited)

    def client(self, name: str, *, credential=None, idempotent=True, waits=None, timeout=5.0, max_retries=2):
        async def fake_sleep(seconds: float) -> None:
            if waits is not None:
                waits.append(seconds)

        return build_client(
            registry.get(name),
            CONFIG[name],
            credential if credential is not None else self.credential(name),
            base_url=self.base_url(name),
            timeout=timeout,
            idempotent=idempotent,
            max_retries=max_retries,
            sleep=fake_sleep,
        )

    def run(
        self,
        full_name: str,
        params: dict[str, Any] | None = None,
        *,
        visitor: Visitor | None = ADA,
        credential=None,
        timeout: float = 5.0,
        max_retries: int = 2,
        wire: list | None = None,
    ) -> Run:
        """Run one action as the engine would (client per action, idempotency from the action)."""
        found = registry.find_action(full_name)
        assert found is not None, full_name
        connector, action = found
        out = Run()

        async def go() -> None:
            client = self.client(
                connector.name,
                credential=credential,
                idempotent=action.idempotent,
                waits=out.waits,
                timeout=timeout,
                max_retries=max_retries,
            )
            if wire is not None:
                record_wire(client, wire)
            ctx = ActionContext(
                client=client,
                params=dict(params or {}),
                visitor=visitor,
                config=CONFIG[connector.name],
                request_id="req-test",
            )
            async with client:
                try:
                    out.result = await action.handler(ctx)
                except ActionError as e:
                    out.error = e
                out.audit = ctx.audit
                out.statuses = upstream_statuses(client)

        asyncio.run(go())
        return out

    def ok(self, full_name: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        r = self.run(full_name, params, **kw)
        assert r.error is None, f"{full_name}: {r.error.code}: {r.error.message}"
        return r.result

    def fail(self, full_name: str, params: dict[str, Any] | None = None, **kw: Any) -> ActionError:
        r = self.run(full_name, params, **kw)
        assert r.error is not None, f"{full_name} unexpectedly succeeded: {r.result!r}"
        return r.error

    def validate(self, name: str, credential=None) -> str:
        connector = registry.get(name)

        async def go() -> str:
            async with self.client(name, credential=credential) as client:
                return await connector.validate(client, CONFIG[name])

        return asyncio.run(go())

    def requests_to(self, vendor: str, method: str, path_part: str) -> int:
        """How many requests the sandbox saw for `vendor` with `method` and `path_part` in the path."""
        log = self.sb.stats()["requests"]
        return sum(
            1 for r in log if r["vendor"] == vendor and r["method"] == method and path_part in r["path"]
        )

    def route_requests(self, vendor: str, route: str) -> int:
        routes = self.sb.stats()["vendors"].get(vendor, {}).get("routes", {})
        return routes.get(route, {}).get("requests", 0)


def record_wire(client: Any, sink: list) -> None:
    """Record what goes on the wire (method, path, headers) below the vendor transport, by wrapping
    httpx's own AsyncHTTPTransport: the edge of the world, not our code."""
    import httpx

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sink.append((request.method, request.url.path, dict(request.headers)))
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    client._transport._inner = Recording(client._transport._inner)


@pytest.fixture(scope="session")
def sandbox():
    from botctl.sandbox.testing import running_sandbox

    with running_sandbox() as sb:
        yield sb


@pytest.fixture
def h(sandbox) -> Harness:
    sandbox.reset()
    return Harness(sandbox)
