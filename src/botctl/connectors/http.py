"""The vendor HTTP client the action engine hands to handlers.

`build_client` returns an `httpx.AsyncClient` whose transport:

* pins every request to the connection's base URL (scheme, host, port and path prefix): anything
  else is refused before a byte is sent, and the credential is never attached to it;
* puts the credential on the wire per the connector's `auth_style`, on a copy of the request, so
  neither the handler nor `response.request` ever holds it;
* bounds every call with connect/read/write/pool timeouts and never follows redirects;
* retries what is safe to retry (see `_retry_safe`) with capped, jittered exponential backoff that
  honours `Retry-After` and Stripe's `Stripe-Should-Retry`;
* turns every non-2xx answer into an `ActionError` with a stable code and a short message from
  which any credential value the vendor echoed back has been scrubbed.

httpx is imported inside functions only: `botctl connectors list` must not pay for it.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from botctl.connectors._common import RETRY_SAFE
from botctl.connectors.base import ActionError, Connector
from botctl.connectors.urls import base_url_for
from botctl.secret import Secret

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({500, 502, 503, 504})
MAX_WAIT = 30.0  # longest Retry-After we sit through before giving up with rate_limited
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
MAX_BODY = 8 * 1024 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Credential-looking tokens scrubbed from vendor error text even when they are not ours.
_TOKEN_RE = re.compile(
    r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{6,}|\bcal_(?:live|test)_[A-Za-z0-9]{6,}"
    r"|\bshp(?:at|ca|pa|ss)_[A-Za-z0-9]{6,}|\b[cC][ks]_[A-Za-z0-9]{16,}"
    r"|\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{8,}|\b[Bb]asic\s+[A-Za-z0-9+/=]{8,}"
)

Sleep = Callable[[float], Awaitable[Any]]


def build_client(
    connector: Connector,
    config: Mapping[str, str],
    credential: Mapping[str, Secret],
    *,
    base_url: str | None = None,
    timeout: float = 10.0,
    idempotent: bool = True,
    max_retries: int = 2,
    sleep: Sleep = asyncio.sleep,
    inner: httpx.AsyncBaseTransport | None = None,
    deadline: float | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for one connection. `base_url` overrides the connector's (sandbox, self-hosted).

    `inner`: a shared connection pool (the daemon's provider passes one so vendor connections are
    kept alive across actions); it is not closed with the client.
    `deadline`: a `time.monotonic()` instant by which every request through this client must be
    over, retries and waits included (the action engine's budget; the daemon's edge stops waiting
    for the provider soon after): no attempt outlives it and no wait is started that would.
    """
    import httpx

    url = httpx.URL(base_url if base_url is not None else base_url_for(connector, config))
    if url.scheme not in ("http", "https") or not url.host:
        raise ActionError("invalid_params", f"{connector.vendor}: the base URL must be an http(s) URL.")
    if url.scheme == "http" and not _is_loopback(url.host):
        # Basic auth and bearer tokens over plain HTTP would be readable on the wire.
        raise ActionError(
            "invalid_params", f"{connector.vendor}: refusing plain http:// to {url.host}; use https://."
        )
    transport = _transport_type()(
        connector,
        credential,
        base=url,
        idempotent=idempotent,
        max_retries=max_retries,
        sleep=sleep,
        inner=inner,
        deadline=deadline,
    )
    return httpx.AsyncClient(
        base_url=url,
        transport=transport,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,  # a proxy mount from the environment would bypass this transport
        headers={"Accept": "application/json", "User-Agent": "botctl/0.1"},
    )


@functools.cache
def _transport_type() -> type[VendorTransport]:
    import httpx

    return type("VendorTransport", (VendorTransport, httpx.AsyncBaseTransport), {})


def upstream_statuses(client: httpx.AsyncClient) -> list[int]:
    """Status codes the vendor answered through this client, in order (for the audit record)."""
    transport = getattr(client, "_transport", None)
    return list(transport.statuses) if isinstance(transport, VendorTransport) else []


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host.lower(), port)


def _auth_headers(connector: Connector, credential: Mapping[str, Secret]) -> dict[str, str]:
    """The connector's declared `AuthStyle` applied to the stored credential."""

    def need(names: tuple[str, ...]) -> str:
        if len(names) == 1 and names[0].startswith("="):
            return names[0][1:]  # a literal part, e.g. Freshdesk's password "X"
        for n in names:
            s = credential.get(n)
            if s:
                return s.reveal()
        raise ActionError("not_connected", f"{connector.vendor}: the stored credential has no {names[0]}.")

    style = connector.wire_style
    value = ":".join(need(part) for part in style.parts)
    if style.scheme == "Basic":
        value = base64.b64encode(value.encode()).decode()
    return {style.header: f"{style.scheme} {value}" if style.scheme else value}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _rate_limit_wait(headers: httpx.Headers) -> float | None:
    wait = parse_retry_after(headers.get("retry-after"))
    if wait is not None:
        return wait
    # Calendly (X-RateLimit-Reset) and the IETF draft Zendesk uses (ratelimit-reset) give seconds
    # until the window resets; a value that large is an epoch timestamp instead.
    for name in ("x-ratelimit-reset", "ratelimit-reset"):
        raw = headers.get(name)
        if raw:
            try:
                n = float(raw)
            except ValueError:
                continue
            return max(0.0, n - time.time()) if n > 1_000_000_000 else max(0.0, n)
    return None


def _graphql_throttle_wait(body: Any) -> float | None:
    """Shopify answers a throttled GraphQL query with HTTP 200 and errors[].extensions.code THROTTLED."""
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return None
    if not any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in body["errors"]
    ):
        return None
    try:
        cost = body["extensions"]["cost"]
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(1.0, missing / float(status["restoreRate"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


class VendorTransport:
    """The transport's logic. `_transport_type()` mixes it into `httpx.AsyncBaseTransport`: defining
    that subclass here would import httpx with this module."""

    def __init__(
        self,
        connector: Connector,
        credential: Mapping[str, Secret],
        *,
        base: httpx.URL,
        idempotent: bool,
        max_retries: int,
        sleep: Sleep,
        inner: httpx.AsyncBaseTransport | None = None,
        deadline: float | None = None,
    ) -> None:
        import httpx

        self._connector = connector
        self._vendor = connector.vendor
        self._credential = dict(credential)
        self._origin = _origin(base)
        self._prefix = base.path.rstrip("/") + "/"
        self._idempotent = idempotent
        self._max_retries = max(0, max_retries)
        self._sleep = sleep
        self._owns_inner = inner is None
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)
        self._deadline = deadline
        self.statuses: list[int] = []

    async def aclose(self) -> None:
        if self._owns_inner:  # a shared pool outlives this client
            await self._inner.aclose()

    # -- the one method httpx calls -------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import httpx

        url = request.url
        # url.path is percent-decoded: an encoded "%2e%2e" segment shows up here as "..".
        segments = url.path.split("/")
        if (
            _origin(url) != self._origin
            or not (url.path + "/").startswith(self._prefix)
            or ".." in segments
            or "." in segments
        ):
            raise ActionError("upstream_error", f"Refused a request outside {self._vendor}'s base URL.")
        safe = self._retry_safe(request)
        headers = httpx.Headers(request.headers)
        for name, value in self._connector.default_headers.items():
            headers.setdefault(name, value)
        for name in ("authorization", "x-shopify-access-token", "cookie"):
            headers.pop(name, None)
        headers.update(_auth_headers(self._connector, self._credential))
        body = await request.aread()
        wire = httpx.Request(
            request.method, url, headers=headers, content=body, extensions=request.extensions
        )

        attempt = 0
        # A change a non-idempotent action sent that may have been applied although no success came back
        # (sent, then the connection dropped or timed out; a 5xx; a 2xx we could not read): if the action
        # ends without a success, its outcome is unknown, and the caller must not be told to just retry.
        changes = request.method not in _SAFE_METHODS and not self._idempotent
        uncertain = False
        while True:
            failure: ActionError | None = None
            retry_wait: float | None = None
            response: httpx.Response | None = None
            if self._deadline is not None:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    raise self._final(
                        ActionError("upstream_timeout", f"{self._vendor} did not answer in time."), uncertain
                    )
                # This attempt gets what is left of the budget if that is less than its own timeouts.
                limits = dict(
                    request.extensions.get("timeout") or dict.fromkeys(("connect", "read", "write", "pool"))
                )
                wire.extensions = {
                    **request.extensions,
                    "timeout": {k: left if v is None else min(v, left) for k, v in limits.items()},
                }
            try:
                response = await self._send(wire)
            except httpx.TimeoutException as exc:
                # Nothing reached the vendor if the connection never opened: safe to retry any method.
                nothing_sent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                failure = ActionError(
                    "upstream_timeout",
                    f"{self._vendor} did not answer in time.",
                    where=where_failed(wire.url, exc),
                )
                retryable = safe or nothing_sent
                uncertain |= changes and not nothing_sent
            except httpx.TransportError as exc:
                nothing_sent = isinstance(exc, httpx.ConnectError)
                what = "could not connect" if nothing_sent else "closed the connection"
                failure = ActionError(
                    "upstream_error",
                    f"{self._vendor} {what}; try again later.",
                    where=where_failed(wire.url, exc),
                )
                retryable = safe or nothing_sent
                uncertain |= changes and not nothing_sent
            if response is not None:
                self.statuses.append(response.status_code)
                failure, retryable, retry_wait = self._classify(response, safe)
                if failure is None:
                    return response
                uncertain |= changes and (response.status_code >= 500 or 200 <= response.status_code < 300)
            assert failure is not None
            if not retryable or attempt >= self._max_retries:
                raise self._final(failure, uncertain)
            if retry_wait is not None and retry_wait > MAX_WAIT:
                raise self._final(failure, uncertain)
            wait = self._backoff(attempt, retry_wait)
            if self._deadline is not None and time.monotonic() + wait >= self._deadline:
                # The retry could not be answered within the budget: report what we have.
                raise self._final(failure, uncertain)
            await self._sleep(wait)
            attempt += 1

    # -- helpers ----------------------------------------------------------------------------------

    def _final(self, failure: ActionError, uncertain: bool) -> ActionError:
        """The error the action ends with: `outcome_unknown` when a change may have been applied."""
        if not uncertain:
            return failure
        return ActionError(
            "outcome_unknown",
            f"{self._vendor} did not confirm the change; it may have been "
            "applied: check before trying again.",
            upstream_status=failure.upstream_status,
        )

    def _retry_safe(self, request: httpx.Request) -> bool:
        if request.method in _SAFE_METHODS:
            return True
        if "idempotency-key" in request.headers:
            return True
        return self._idempotent or all(request.extensions.get(k) == v for k, v in RETRY_SAFE.items())

    async def _send(self, wire: httpx.Request) -> httpx.Response:
        import httpx

        response = await self._inner.handle_async_request(wire)
        try:
            raw = bytearray()
            async for chunk in response.stream:  # raw (still encoded) bytes
                raw += chunk
                if len(raw) > MAX_BODY:
                    raise ActionError("upstream_error", f"{self._vendor} sent an oversized response.")
        finally:
            await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=bytes(raw),
            extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # Honour the vendor's wait; a little jitter on top spreads a herd of clients.
            return retry_after + random.uniform(0, min(1.0, retry_after * 0.1))
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)

    def _classify(
        self, response: httpx.Response, safe: bool
    ) -> tuple[ActionError | None, bool, float | None]:
        """(error or None for success, whether a retry is allowed, the vendor's wait if it gave one)."""
        status = response.status_code
        vendor = self._vendor
        should_retry = response.headers.get("stripe-should-retry")  # Stripe's explicit verdict
        body = self._json(response)

        def err(code: str, message: str, retry_after: float | None = None) -> ActionError:
            return ActionError(code, message, retry_after=retry_after, upstream_status=status)

        if 200 <= status < 300:
            if body is _MALFORMED and "json" in response.headers.get("content-type", ""):
                return err("upstream_error", f"{vendor} returned malformed JSON."), safe, None
            wait = _graphql_throttle_wait(body)
            if wait is not None:
                # A throttled query was not executed, so retrying it is safe whatever the action.
                return err("rate_limited", f"{vendor} is rate limiting this connection.", wait), True, wait
            return None, False, None
        if 300 <= status < 400:
            msg = f"{vendor} answered with a redirect ({status}); check the connection's base URL."
            return err("upstream_error", msg), False, None
        if status == 429:
            wait = _rate_limit_wait(response.headers)
            when = f"in {int(wait + 0.999)} s" if wait is not None else "shortly"
            # A 429 was refused before any work was done: retrying is safe for every method.
            msg = f"{vendor} is rate limiting this connection; try again {when}."
            return err("rate_limited", msg, wait), should_retry != "false", wait
        if status >= 500:
            wait = parse_retry_after(response.headers.get("retry-after")) if status == 503 else None
            retryable = should_retry == "true" or (
                safe and status in RETRY_STATUSES and should_retry != "false"
            )
            msg = f"{vendor} had an internal error (HTTP {status}); try again later."
            return err("upstream_error", msg, wait), retryable, wait
        code, message = self._client_error(status, body, self._detail(body, response))
        return err(code, message), should_retry == "true" and safe, None

    def _client_error(self, status: int, body: Any, detail: str) -> tuple[str, str]:
        vendor = self._vendor
        suffix = f": {detail}" if detail else "."
        if status == 403 or (status == 401 and _is_permission_401(body)):
            # A vendor 403 is a permission the connection was not granted (scope, restricted-key
            # permission, agent role): the operator fixes it, so it gets its own code.
            return "missing_scope", f"The {vendor} connection lacks permission for this request{suffix}"
        if status == 401:
            return (
                "needs_reauth",
                f"{vendor} rejected the stored credential; reconnect the {self._connector.name} connection.",
            )
        if status == 404:
            return "not_found", f"{vendor} has no such object."
        if status in (400, 422):
            return "invalid_params", f"{vendor} rejected the request{suffix}"
        return "upstream_error", f"{vendor} refused the request (HTTP {status}){suffix}"

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return json.loads(response.content)
        except ValueError:
            return _MALFORMED

    def _detail(self, body: Any, response: httpx.Response) -> str:
        """A short vendor explanation, scrubbed of credentials."""
        text = _vendor_message(body)
        if text is None and body is _MALFORMED and "text/plain" in response.headers.get("content-type", ""):
            text = response.text
        return self.scrub(text or "")

    def scrub(self, text: str) -> str:
        """`text` without any credential value (raw, as sent in a header, or URL-encoded), shortened."""
        for value in self._secret_values():
            text = text.replace(value, "[redacted]")
        text = _TOKEN_RE.sub("[redacted]", text)
        text = re.sub(r"\*{4,}", "****", text)  # vendors' own masking ("rk_live_*****…1234") only takes room
        return " ".join(text.split())[:300].rstrip()

    def _secret_values(self) -> list[str]:
        from urllib.parse import quote

        values = {s.reveal() for s in self._credential.values() if isinstance(s, Secret)}
        values |= {v.split(" ", 1)[-1] for v in _auth_headers(self._connector, self._credential).values()}
        values |= {quote(v, safe="") for v in values}
        # Longest first, so a value that contains another is replaced whole.
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def where_failed(url: httpx.URL, exc: Exception) -> str:
    """The address tried (no query: it may carry a customer's details) and the cause, for the operator."""
    cause: BaseException | None = exc
    reason = ""
    while cause is not None and not reason:
        if isinstance(cause, OSError) and cause.errno:  # ECONNREFUSED, EHOSTUNREACH, a DNS failure...
            reason = os.strerror(cause.errno) if cause.errno > 0 else (cause.strerror or "")
        cause = cause.__cause__ or cause.__context__
    if not reason:
        reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or type(exc).__name__
    return f"{url.copy_with(query=None)} ({reason[:1].lower() + reason[1:]})"


def _is_permission_401(body: Any) -> bool:
    """WooCommerce answers 401 both for bad keys and for valid keys without the permission
    (`woocommerce_rest_cannot_create`, or "The API key provided does not have write permissions.")."""
    if not isinstance(body, dict):
        return False
    code, message = str(body.get("code") or ""), str(body.get("message") or "").lower()
    return "_cannot_" in code or ("does not have" in message and "permission" in message)


class _Malformed:
    pass


_MALFORMED = _Malformed()


def _vendor_message(body: Any) -> str | None:
    """The human part of the eight vendors' error bodies."""
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):  # Stripe {error:{message}}, Cal.com {status:"error", error:{message}}
        msg = err.get("message") or err.get("code")
        if isinstance(msg, str):
            return msg
    parts: list[str] = []
    for key in ("title", "message", "description"):  # Calendly, HubSpot/Woo, Zendesk/Freshdesk
        val = body.get(key)
        if isinstance(val, str) and val and val not in parts:
            parts.append(val)
    if isinstance(err, str) and not parts:  # Zendesk {"error": "RecordInvalid", "description": ...}
        parts.append(err)
    errors = body.get("errors")
    if isinstance(errors, str):  # Shopify REST
        parts.append(errors)
    elif isinstance(errors, list):  # Freshdesk [{field, message}], HubSpot [{message}]
        for e in errors[:3]:
            if isinstance(e, dict) and isinstance(e.get("message"), str):
                field = e.get("field")
                parts.append(f"{field}: {e['message']}" if isinstance(field, str) else e["message"])
    details = body.get("details")
    if isinstance(details, list):  # Calendly [{parameter, message}]
        for d in details[:3]:
            if isinstance(d, dict) and isinstance(d.get("message"), str):
                parts.append(d["message"])
    return "; ".join(parts) or None
