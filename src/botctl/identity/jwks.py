"""JWKS key sets, fetched off the request path: a background thread, single-flight per URL, a deadline,
a size cap, expiry, and a negative cache with backoff."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botctl.identity.errors import IdentityError
from botctl.identity.keys import is_loopback_url

MAX_JWKS_BYTES = 1 << 20  # 1 MiB
MAX_JWKS_KEYS = 100
JWKS_REFRESH_S = 300.0  # a set is used at most this long after the fetch that produced it began
JWKS_MIN_REFRESH_S = 30.0  # the floor for a shorter Cache-Control max-age
JWKS_REFRESH_AT = 0.6  # the background refresh starts at this fraction of the interval
JWKS_FIRST_WAIT_S = 3.0  # a request may wait this long for its own workspace's first fetch
JWKS_DEADLINE_S = 5.0  # one fetch, connect to last byte
JWKS_MIN_REFETCH_S = 30.0  # an unknown kid refetches a set at most this often
JWKS_BACKOFF_CAP_S = 60.0
JWKS_IDLE_S = 3600.0  # a set nobody asked for in this long is dropped (and no longer refreshed)
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass
class _KeySet:
    url: str
    used_at: float
    keys: dict[str, list[dict[str, Any]]] | None = None  # kid -> JWKs (a kid may repeat)
    fetched_at: float = 0.0
    refresh_s: float = JWKS_REFRESH_S
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    inflight: Any = None  # concurrent.futures.Future while a fetch runs
    started_at: float = 0.0  # when that fetch began: nobody waits for it past started_at + first_wait_s
    parsed: dict[tuple[str, str], Any] | None = None


class _JwksFetchError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JwksCache:
    """Key sets of pinned JWKS URLs, shared by every workspace of the process.

    Fetched on a background thread of its own (its own event loop), never on a caller's: one fetch
    at a time per URL (every waiter shares it), a total deadline per fetch, 1 MiB and 100 keys at
    most, no redirects, no proxies from the environment. A set is used for `refresh_s` (5 min, or a
    shorter `Cache-Control: max-age`, not under 30 s) from the moment its fetch began, and refreshed in
    the background from 60% of that; after that it is gone, so a key the site removed stops verifying
    within the interval, also when the host stops answering. A failed fetch backs off (1 s doubling to
    60 s, with jitter), and meanwhile requests fail at once. The first fetch of a URL may be awaited
    for `first_wait_s`; an unknown kid refetches a set at most every `min_refetch_s`.
    """

    def __init__(
        self,
        *,
        refresh_s: float = JWKS_REFRESH_S,
        first_wait_s: float = JWKS_FIRST_WAIT_S,
        deadline_s: float = JWKS_DEADLINE_S,
        min_refetch_s: float = JWKS_MIN_REFETCH_S,
        max_bytes: int = MAX_JWKS_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import threading

        self.refresh_s = refresh_s
        self.first_wait_s = first_wait_s
        self.deadline_s = deadline_s
        self.min_refetch_s = min_refetch_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.fetches = 0
        self._lock = threading.Lock()
        self._sets: dict[str, _KeySet] = {}
        self._loop: Any = None
        self._client: Any = None

    # -- the request path: never any I/O ----------------------------------------------------------

    def _lookup(
        self, urls: list[str], kid: str, alg: str, *, may_wait: bool
    ) -> tuple[Any, str | None, list[tuple[Any, float]]]:
        """(key, None, []) | (None, reason, []) | (None, None, [(fetch future, wait until), ...])."""
        reasons: list[str] = []
        fetching: list[_KeySet] = []
        with self._lock:
            now = self.clock()
            for url in urls:
                s = self._sets.get(url)
                if s is None:
                    s = self._sets[url] = _KeySet(url, used_at=now, refresh_s=self.refresh_s)
                s.used_at = now
                age = now - s.fetched_at
                if s.keys is not None and age >= s.refresh_s:
                    s.keys, s.parsed = None, None  # expired: never used again, whatever happens next
                if s.keys is not None:
                    if age >= JWKS_REFRESH_AT * s.refresh_s and s.retry_at <= now:
                        self._start(s)
                    found = self._key(s, kid, alg)
                    if isinstance(found, str):
                        reasons.append(found)
                    elif found is not None:
                        return found, None, []
                    elif age >= self.min_refetch_s and s.retry_at <= now:
                        self._start(s)  # maybe a key the site has just added
                        fetching.append(s)
                    elif s.inflight is not None:
                        fetching.append(s)
                    else:
                        reasons.append("unknown_kid")
                elif s.failures:
                    if s.retry_at <= now:
                        self._start(s)  # in the background: a host known to fail is not waited for
                    reasons.append(f"jwks_unavailable:{s.last_error}")
                else:
                    self._start(s)
                    fetching.append(s)
            # Nobody waits for a fetch longer than first_wait_s after it began, however late they came.
            waits = [
                (s.inflight, s.started_at + self.first_wait_s)
                for s in fetching
                if s.inflight is not None and s.started_at + self.first_wait_s > now
            ]
        if waits and may_wait:
            return None, None, waits
        if fetching:
            reasons.append("jwks_unavailable:pending")
        order = ("alg_mismatch", "ambiguous_kid", "unknown_kid")
        reasons.sort(key=lambda r: order.index(r) if r in order else -1)
        return None, (reasons[0] if reasons else "unknown_kid"), []

    def _key(self, s: _KeySet, kid: str, alg: str) -> Any:
        """The verification key for (kid, alg) in a fetched set, None if absent, or a refusal reason."""
        assert s.keys is not None
        if s.parsed is None:
            s.parsed = {}
        if (kid, alg) in s.parsed:
            return s.parsed[(kid, alg)]
        candidates = s.keys.get(kid) or []
        if not candidates:
            return None
        usable = [k for k in (_jwk_key(j, alg) for j in candidates) if k is not None]
        result: Any = usable[0] if len(usable) == 1 else ("ambiguous_kid" if usable else "alg_mismatch")
        s.parsed[(kid, alg)] = result
        return result

    def key_sync(self, urls: list[str], kid: str, alg: str) -> Any:
        import asyncio
        import concurrent.futures

        try:
            asyncio.get_running_loop()
            on_loop = True  # called on an event loop's thread: waiting would stall every other request
        except RuntimeError:
            on_loop = False
        key, reason, waits = self._lookup(urls, kid, alg, may_wait=not on_loop)
        if waits:
            concurrent.futures.wait([f for f, _ in waits], timeout=self._wait_s(waits))
            key, reason, _ = self._lookup(urls, kid, alg, may_wait=False)
        if key is None:
            raise IdentityError(reason or "unknown_kid")
        return key

    async def key(self, urls: list[str], kid: str, alg: str) -> Any:
        import asyncio

        key, reason, waits = self._lookup(urls, kid, alg, may_wait=True)
        if waits:
            # asyncio.wait never cancels what it waits for: the fetch is shared with other requests.
            await asyncio.wait([asyncio.wrap_future(f) for f, _ in waits], timeout=self._wait_s(waits))
            key, reason, _ = self._lookup(urls, kid, alg, may_wait=False)
        if key is None:
            raise IdentityError(reason or "unknown_kid")
        return key

    def _wait_s(self, waits: list[tuple[Any, float]]) -> float:
        return max(0.0, min(self.first_wait_s, max(until for _, until in waits) - self.clock()))

    # -- the fetcher thread -------------------------------------------------------------------------

    def _start(self, s: _KeySet) -> Any:
        """The running fetch of `s`, or a new one (called with the lock held)."""
        import concurrent.futures

        if s.inflight is not None:
            return s.inflight
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        s.inflight, s.started_at = future, self.clock()
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(lambda: loop.create_task(self._fetch(s, future)))
        return future

    def _ensure_loop(self) -> Any:
        import asyncio
        import threading

        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="botctl-jwks", daemon=True).start()
            loop.call_soon_threadsafe(lambda: loop.create_task(self._tick()))
            self._loop = loop
        return self._loop

    async def _tick(self) -> None:
        """Refresh sets before they expire, retry failing ones, forget idle ones."""
        import asyncio

        while True:
            await asyncio.sleep(1.0)
            with self._lock:
                now = self.clock()
                for url, s in list(self._sets.items()):
                    if now - s.used_at > JWKS_IDLE_S and s.inflight is None:
                        del self._sets[url]
                    elif (
                        s.inflight is None
                        and s.retry_at <= now
                        and (s.keys is None or now - s.fetched_at >= JWKS_REFRESH_AT * s.refresh_s)
                    ):
                        self._start(s)

    async def _fetch(self, s: _KeySet, future: Any) -> None:
        import asyncio
        import logging
        import random

        started = s.started_at
        try:
            async with asyncio.timeout(self.deadline_s):
                keys, max_age = await self._download(s.url)
        except _JwksFetchError as exc:
            keys, max_age, error = None, None, exc.reason
        except TimeoutError:
            keys, max_age, error = None, None, "timeout"
        except Exception as exc:  # noqa: BLE001 - whatever happens, the waiters are released below
            keys, max_age, error = None, None, type(exc).__name__
        else:
            error = None
        with self._lock:
            self.fetches += 1
            if keys is not None:
                s.keys, s.parsed, s.fetched_at = keys, None, started
                s.refresh_s = (
                    min(self.refresh_s, max(JWKS_MIN_REFRESH_S, max_age))
                    if max_age is not None
                    else self.refresh_s
                )
                s.failures, s.retry_at, s.last_error = 0, 0.0, None
            else:
                if not s.failures or s.last_error != error:
                    logging.getLogger("botctl.identity").warning(
                        "JWKS %s: fetch failed (%s)", _where(s.url), error
                    )
                s.failures += 1
                s.last_error = error
                wait = min(JWKS_BACKOFF_CAP_S, 2.0 ** (s.failures - 1))
                s.retry_at = self.clock() + wait * random.uniform(0.8, 1.0)
            s.inflight = None
        future.set_result(None)

    async def _download(self, url: str) -> tuple[dict[str, list[dict[str, Any]]], float | None]:
        import json

        import httpx

        from botctl.oauth.protocol import ResponseTooLarge, read_capped

        if not (url.startswith("https://") or is_loopback_url(url)):
            raise _JwksFetchError("not_https")
        if self._client is None:
            # No redirects (an https -> http downgrade, or a host nobody pinned), no proxies from the
            # environment; the deadline around the whole fetch is the caller's.
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(self.deadline_s),
                headers={"Accept": "application/json", "User-Agent": "botctl/0.1"},
            )
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _JwksFetchError(
                        "redirect" if 300 <= response.status_code < 400 else f"http_{response.status_code}"
                    )
                raw = await read_capped(response, self.max_bytes)
                cache_control = response.headers.get("cache-control", "")
        except ResponseTooLarge:
            raise _JwksFetchError("too_large") from None
        except httpx.TimeoutException:
            raise _JwksFetchError("timeout") from None
        except httpx.HTTPError as exc:
            raise _JwksFetchError(f"unreachable:{type(exc).__name__}") from None
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            raise _JwksFetchError("malformed") from None
        members = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(members, list):
            raise _JwksFetchError("malformed")
        if len(members) > MAX_JWKS_KEYS:
            raise _JwksFetchError("too_many_keys")
        keys: dict[str, list[dict[str, Any]]] = {}
        for jwk in members:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if _PRIVATE_JWK_MEMBERS & set(jwk):
                continue  # a private or symmetric key published by mistake verifies nothing here
            if jwk.get("use", "sig") != "sig":
                continue
            ops = jwk.get("key_ops")
            if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
                continue
            keys.setdefault(jwk["kid"], []).append(jwk)
        return keys, _max_age(cache_control)


def _max_age(cache_control: str) -> float | None:
    for part in cache_control.lower().split(","):
        name, _, value = part.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                return float(int(value.strip().strip('"')))
            except ValueError:
                return None
    return None


def _where(url: str) -> str:
    """A JWKS URL for a log line: scheme, host and path (never a query string)."""
    from urllib.parse import urlsplit

    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}{p.path}"


def _jwk_key(jwk: dict[str, Any], alg: str) -> Any:
    """The public key of one JWK for `alg`, or None when it does not fit the pinned algorithm."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if jwk.get("alg", alg) != alg:
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    if alg == "RS256":
        return key if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048 else None
    if alg == "ES256":
        return key if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1" else None
    return key if isinstance(key, ed25519.Ed25519PublicKey) else None


_JWKS: JwksCache | None = None


def jwks_cache() -> JwksCache:
    """The process-wide JWKS cache (the provider's)."""
    global _JWKS
    if _JWKS is None:
        _JWKS = JwksCache()
    return _JWKS
