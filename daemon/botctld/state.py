"""The edge's state (one per process, `app.state.edge`) and the small pieces every endpoint shares."""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse

from botctld import error_codes, widget_bundle
from botctld.clientip import ClientAddress
from botctld.metrics import Metrics
from botctld.provider_client import ProviderClient, ProviderError
from botctld.ratelimit import TokenBuckets


class ProviderDown(Exception):
    """The provider did not answer (restarting, crashed, overloaded): 503, never a 500."""


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex[:16]


def seg(value: str) -> str:
    """A path parameter as one percent-encoded segment of a provider URL (`?`, `#`, `%`, `..`, control
    characters and non-ASCII reach the provider as the same string, never as URL syntax)."""
    return {".": "%2E", "..": "%2E%2E"}.get(value) or quote(value, safe="")


def err(code: str, message: str, rid: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The stable error envelope, `{"error": {"code", "message"}, "request_id"}`, with the code's status
    from the one catalogue (botctld.error_codes)."""
    return JSONResponse(
        {"error": {"code": code, "message": message}, "request_id": rid},
        status_code=error_codes.status(code),
        headers=headers,
    )


class Edge:
    def __init__(
        self,
        socket_path: str,
        *,
        ip_rate: float = 20.0,
        ip_burst: int = 60,
        visitor_rate: float = 5.0,
        visitor_burst: int = 20,
        config_ttl: float = 5.0,
        provider_timeout: float = 30.0,
        trust_proxy: int = 0,
        trust_proxy_cidrs: tuple[str, ...] = (),
        metrics_port: int | None = None,
        provider_ssl: Any = None,
        provider_name: str = "provider",
    ) -> None:
        self.socket_path = socket_path
        self.ip_limits = TokenBuckets(ip_rate, ip_burst)
        self.visitor_limits = TokenBuckets(visitor_rate, visitor_burst)
        self.config_ttl = config_ttl
        self.addresses = ClientAddress(trust_proxy, trust_proxy_cidrs)
        self.metrics_port = metrics_port  # /metrics is served only on this (loopback) listener
        self.metrics = Metrics()
        self._configs: dict[str, tuple[float, int, dict[str, Any]]] = {}
        self.client = ProviderClient(
            socket_path,
            timeout=provider_timeout,
            connect_timeout=2.0,
            ssl_context=provider_ssl,
            server_name=provider_name,
        )
        self.widget_js = widget_bundle.bundle()
        self.widget_etag = '"' + hashlib.sha256(self.widget_js).hexdigest()[:16] + '"'
        # Compressed once (55 KB → ~16 KB); its own ETag, as a different representation (RFC 9110 §8.8.3).
        self.widget_gz = gzip.compress(self.widget_js, 9, mtime=0)
        self.widget_gz_etag = self.widget_etag[:-1] + '-gz"'

    async def provider(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The provider's {status, body} for this request. `path` carries every parameter through seg():
        the client writes it into the request line as it is."""
        try:
            status, answer = await self.client.request(method, path, payload)
        except ProviderError as exc:
            raise ProviderDown(str(exc)) from None
        if status != 200 or not isinstance(answer, dict):
            raise ProviderDown(f"HTTP {status}" if status != 200 else "bad answer")
        return answer

    def cached_cors(self, path: str, origin: str | None) -> dict[str, str]:
        """CORS headers for a refusal made before any other work (the per-IP limit): only from what is
        already cached — the workspace's config, from an earlier request — never a provider round trip.
        A widget being limited has just made requests, so its browser can read the 429 and wait."""
        if origin is None or not path.startswith("/v1/workspaces/"):
            return {}
        hit = self._configs.get(path.split("/")[3])
        if (
            hit is None
            or hit[0] <= time.monotonic()
            or hit[1] != 200
            or origin not in hit[2].get("origins", [])
        ):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Vary": "Origin",
            "Access-Control-Expose-Headers": "X-Request-Id, Retry-After",
        }

    async def ws_config(self, ws: str) -> tuple[int, dict[str, Any]]:
        hit = self._configs.get(ws)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1], hit[2]
        answer = await self.provider("GET", f"/v1/workspaces/{seg(ws)}/config")
        self._configs[ws] = (now + self.config_ttl, answer["status"], answer["body"])
        if len(self._configs) > 10_000:
            self._configs.clear()
        return answer["status"], answer["body"]
