"""Everything one sandbox app instance remembers: tokens, vendor data, stats, faults, config."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import credentials, seed
from .oauth.profiles import default_device_flow, oauth_vendor_names
from .tokens import TokenRegistry

if TYPE_CHECKING:
    from starlette.routing import Route  # noqa: TID253

    from .vendors.base import Vendor

FAULT_KINDS = (
    "429",
    "500",
    "502",
    "503",
    "hang",
    "reset",
    "malformed_json",
    "throttled",
    # These let the request run for real, then lose the answer: "rotate_then_fail" replies with
    # the vendor's 500 (a token endpoint that rotated the refresh token, then failed),
    # "write_then_reset" drops the connection (a write applied whose response never arrives), and
    # "write_then_hang" holds it like "hang" first (a write applied while its caller is killed).
    # "write_then_delay" does not lose it: the answer is sent, `hang_seconds` late (a write at the vendor
    # while its caller stalls).
    "rotate_then_fail",
    "write_then_reset",
    "write_then_hang",
    "write_then_delay",
)
# Kinds whose request is applied before the fault (all others are decided before the vendor code).
APPLY_THEN_FAULT = frozenset({"rotate_then_fail", "write_then_reset", "write_then_hang", "write_then_delay"})
DAY = 86400


@dataclass
class Fault:
    id: int
    vendor: str
    kind: str
    count: int
    retry_after: float | None = None
    path: str | None = None
    method: str | None = None
    # How long a "hang" (or "write_then_hang") holds the request before dropping the connection (ends early on shutdown
    # or when the client goes away); how late "write_then_delay" sends its answer.
    hang_seconds: float = 60.0

    def matches(self, vendor: str, method: str, path: str) -> bool:
        return (
            self.vendor == vendor
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or self.path in path)
        )


class FaultTable:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, **spec: Any) -> Fault:
        with self._lock:
            fault = Fault(id=self._next_id, **spec)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def take(self, vendor: str, method: str, path: str) -> Fault | None:
        """Consume one use of the oldest armed fault matching this request."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(vendor, method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]


@dataclass
class RouteStats:
    requests: int = 0
    faulted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class Stats:
    """Request counts per vendor and per "METHOD /path-template", plus a recent-request log."""

    def __init__(self, log_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.total = 0
            self.vendors: dict[str, dict[str, Any]] = {}
            self.token_grants: dict[str, dict[str, int]] = {}
            self.token_grant_errors: dict[str, dict[str, int]] = {}
            self.oauth_events: dict[str, dict[str, int]] = {}
            self.log: deque[dict[str, Any]] = deque(maxlen=self._log_size)
            self._windows: dict[tuple[str, str | None], tuple[int, int]] = {}

    def record(
        self,
        *,
        vendor: str,
        tenant: str | None,
        method: str,
        path: str,
        route: str,
        status: int | None,
        fault: str | None,
        request_id: str,
    ) -> None:
        with self._lock:
            self.total += 1
            v = self.vendors.setdefault(vendor, {"requests": 0, "faulted": 0, "routes": {}})
            v["requests"] += 1
            r: RouteStats = v["routes"].setdefault(route, RouteStats())
            r.requests += 1
            code = str(status) if status is not None else "none"
            r.statuses[code] = r.statuses.get(code, 0) + 1
            if fault:
                v["faulted"] += 1
                r.faulted += 1
            self.log.append(
                {
                    "vendor": vendor,
                    "tenant": tenant,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "fault": fault,
                    "request_id": request_id,
                    "at": time.time(),
                }
            )

    def record_grant(self, vendor: str, grant_type: str) -> None:
        """For the OAuth authorization server: count token grants by type."""
        with self._lock:
            grants = self.token_grants.setdefault(vendor, {})
            grants[grant_type] = grants.get(grant_type, 0) + 1

    def record_grant_error(self, vendor: str, error: str) -> None:
        """For the OAuth authorization server: count failed token requests by OAuth error code."""
        with self._lock:
            errors = self.token_grant_errors.setdefault(vendor, {})
            errors[error] = errors.get(error, 0) + 1

    def record_oauth_event(self, vendor: str, event: str) -> None:
        """code_replay, refresh_token_reuse, revocation, uninstall, ... (for tests to assert on)."""
        with self._lock:
            events = self.oauth_events.setdefault(vendor, {})
            events[event] = events.get(event, 0) + 1

    def hit_window(self, vendor: str, tenant: str | None, window: int = 60) -> tuple[int, int]:
        """Count a request in the current fixed window: (requests so far, seconds until reset)."""
        now = int(time.time())
        start = now - now % window
        with self._lock:
            ws, count = self._windows.get((vendor, tenant), (start, 0))
            if ws != start:
                ws, count = start, 0
            count += 1
            self._windows[(vendor, tenant)] = (ws, count)
        return count, start + window - now

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "vendors": {
                    name: {
                        "requests": v["requests"],
                        "faulted": v["faulted"],
                        "routes": {k: asdict(rs) for k, rs in v["routes"].items()},
                    }
                    for name, v in self.vendors.items()
                },
                "token_grants": {k: dict(v) for k, v in self.token_grants.items()},
                "token_grant_errors": {k: dict(v) for k, v in self.token_grant_errors.items()},
                "oauth_events": {k: dict(v) for k, v in self.oauth_events.items()},
                "requests": list(self.log),
            }


@dataclass
class SandboxConfig:
    # Silently cap every list endpoint's page size (pagination tests with few objects).
    max_page_size: int | None = None
    # Shopify GraphQL leaky bucket (points): Standard plan numbers (docs/vendors.md §7.4).
    shopify_max_available: float = 1000.0
    shopify_restore_rate: float = 50.0
    # OAuth authorization servers: approve authorization requests without the consent page.
    auto_approve: bool = False
    # Vendors whose sandbox authorization server offers the RFC 8628 device flow. None of the real
    # vendors does: a test affordance, on by default where the vendor's profile says so.
    device_flow: list[str] = field(default_factory=list)
    # RFC 8628 `interval` and `expires_in` of new device codes (seconds).
    device_interval: int = 5
    device_code_ttl: int = 600
    # List filters the sandbox silently ignores, as "vendor.parameter" (e.g. "calendly.invitee_email"): a
    # vendor that drops a filter it no longer supports must not show a visitor anyone else's objects.
    ignored_filters: list[str] = field(default_factory=list)

    def update(self, values: dict[str, Any], *, oauth_vendors: Iterable[str]) -> None:
        """Set `values` after checking them all (`oauth_vendors`: the names `device_flow` may list)."""
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown config key: {key}")
            if key == "max_page_size" and value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError("max_page_size must be a positive integer or null")
            if key.startswith("shopify_") and not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            if key == "auto_approve" and not isinstance(value, bool):
                raise ValueError("auto_approve must be a boolean")
            if key == "device_flow":
                value = check_device_flow(value, oauth_vendors)
            if key == "ignored_filters" and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise ValueError("ignored_filters must be a list of 'vendor.parameter' strings")
            if key in ("device_interval", "device_code_ttl") and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"{key} must be a non-negative integer")
            checked[key] = value
        for key, value in checked.items():
            setattr(self, key, value)


def check_device_flow(value: Any, oauth_vendors: Iterable[str]) -> list[str]:
    names = tuple(oauth_vendors)
    if not isinstance(value, list | tuple) or not all(v in names for v in value):
        raise ValueError(f"device_flow must be a list of OAuth vendors ({', '.join(names)})")
    return list(dict.fromkeys(value))


class SandboxState:
    def __init__(
        self,
        *,
        vendors: Iterable[Vendor],
        token_ttl: int | None = None,
        auto_approve: bool = False,
        device_flow: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from .oauth.server import OAuthHub  # authlib: only when a sandbox is actually built

        self.clock = clock
        self.token_ttl = token_ttl
        self.tenant = seed.TENANT
        self.vendors: dict[str, Vendor] = {v.name: v for v in vendors}
        self.oauth_vendor_names = oauth_vendor_names(self.vendors.values())
        # Vendor name -> the routes mounted under its prefix (sandbox.app.vendor_routes).
        self.routes: dict[str, list[Route]] = {}
        # What `reset` (and start-up) restores in `config`.
        self.config_defaults = {
            "auto_approve": auto_approve,
            "device_flow": check_device_flow(
                list(default_device_flow(self.vendors.values()) if device_flow is None else device_flow),
                self.oauth_vendor_names,
            ),
        }
        # Seed times are relative to the start of the day the app was created, so every reset
        # rebuilds exactly the same data.
        now = clock()
        self.anchor = float(int(now) - int(now) % DAY)
        self.tokens = TokenRegistry(clock=clock, default_ttl=token_ttl)
        self.stats = Stats()
        self.faults = FaultTable()
        self.config = self.default_config()
        self.stores: dict[str, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = asyncio.Event()
        self.oauth = OAuthHub(self)
        self.reset()

    def reset(self) -> None:
        """Back to the state at start-up: seed data, static credentials only, no faults, default config."""
        self.tokens.clear()
        credentials.install(self.tokens, self.vendors.values())
        self.stores = {name: vendor.new_store(self) for name, vendor in self.vendors.items()}
        self.oauth.reset()
        self.faults.clear()
        self.config = self.default_config()
        self.stats.reset()

    def default_config(self) -> SandboxConfig:
        d = self.config_defaults
        return SandboxConfig(auto_approve=d["auto_approve"], device_flow=list(d["device_flow"]))

    def page_size(self, requested: int | None, default: int, maximum: int) -> int:
        size = default if requested is None else requested
        size = max(1, min(size, maximum))
        if self.config.max_page_size:
            size = min(size, self.config.max_page_size)
        return size

    def release_hangs(self) -> None:
        """End every hanging request now (safe to call from any thread)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            self.shutting_down.set()
            return
        try:
            loop.call_soon_threadsafe(self.shutting_down.set)
        except RuntimeError:
            pass
