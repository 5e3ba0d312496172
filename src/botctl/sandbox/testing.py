"""Run the sandbox on loopback in a background thread, for tests.

with running_sandbox() as sb:
    creds = sb.credentials()
    httpx.get(sb.url + "/zendesk/acme/api/v2/users/me.json", headers=...)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx  # noqa: TID253
from starlette.applications import Starlette  # noqa: TID253

from .server import SandboxServer, make_server
from .state import SandboxState


@dataclass
class HtmlForm:
    action: str
    method: str
    fields: dict[str, str]
    buttons: list[tuple[str, str]]


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[HtmlForm] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(HtmlForm(a.get("action", ""), a.get("method", "get").lower(), {}, []))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def parse_form(page: str) -> HtmlForm:
    """The first form of an HTML page (action, method, input values, submit buttons)."""
    parser = _FormParser()
    parser.feed(page)
    if not parser.forms:
        raise ValueError("no form on the page")
    return parser.forms[0]


class RunningSandbox:
    def __init__(self, server: SandboxServer, url: str) -> None:
        self.server = server
        self.url = url
        self._client = httpx.Client(base_url=url, timeout=10.0)

    @property
    def app(self) -> Starlette:
        return self.server.config.app  # type: ignore[return-value]

    @property
    def state(self) -> SandboxState:
        return self.server.sandbox_state

    def vendor_url(self, vendor: str, tenant: str | None = None) -> str:
        """Base URL standing in for the vendor's, e.g. vendor_url("zendesk") -> {url}/zendesk/acme."""
        return self.url + self.state.vendors[vendor].base_path(tenant or self.state.tenant)

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._client.request(method, path, json=json)
        response.raise_for_status()
        return response.json()

    def credentials(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/credentials")

    def seed(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/seed")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats")

    def reset_stats(self) -> None:
        self._call("POST", "/_sandbox/stats/reset")

    def fault(
        self,
        vendor: str,
        kind: str,
        count: int = 1,
        *,
        retry_after: float | None = None,
        path: str | None = None,
        method: str | None = None,
        hang_seconds: float | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "vendor": vendor,
            "kind": kind,
            "count": count,
            "retry_after": retry_after,
            "path": path,
            "method": method,
        }
        if hang_seconds is not None:
            spec["hang_seconds"] = hang_seconds
        return self._call("POST", "/_sandbox/faults", spec)["fault"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def configure(self, **values: Any) -> dict[str, Any]:
        return self._call("POST", "/_sandbox/config", values)

    def issue_token(
        self, vendor: str, scopes: list[str], ttl: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        return self._call(
            "POST", "/_sandbox/tokens", {"vendor": vendor, "scopes": scopes, "ttl": ttl, **extra}
        )

    def revoke_token(self, token: str) -> bool:
        return self._call("POST", "/_sandbox/tokens/revoke", {"token": token})["revoked"]

    def reset(self) -> None:
        """Seed data, static credentials, no faults, default config, zeroed stats."""
        self._call("POST", "/_sandbox/reset")

    # --- OAuth ---------------------------------------------------------------------------------------

    def oauth(self, vendor: str) -> dict[str, Any]:
        """The vendor's `oauth` block from /_sandbox/credentials (endpoints, clients, scopes)."""
        return self.credentials()[vendor]["oauth"]

    def consent(self, authorize_url: str, params: Any = None, *, decision: str = "approve") -> httpx.Response:
        """Act as the user's browser: open the authorization URL, then press Approve or Deny on the
        consent page. Returns the final response: normally the 302 to the redirect URI (not
        followed), or the sandbox's error page. With `auto_approve`, the first 302 is returned."""
        browser = self._client  # absolute URLs: the base URL does not apply
        page = browser.get(authorize_url, params=params)
        if page.status_code != 200 or "text/html" not in page.headers.get("content-type", ""):
            return page
        form = parse_form(page.text)
        fields = {**form.fields, "decision": decision}
        return browser.post(str(page.url.join(form.action)), data=fields)

    def approve_device(self, user_code: str, *, deny: bool = False) -> dict[str, Any]:
        """Approve (or deny) a device flow's user code, as the user would on the verification page."""
        return self._call("POST", "/_sandbox/device/approve", {"user_code": user_code, "deny": deny})

    def expire_oauth_tokens(
        self, vendor: str | None = None, *, token: str | None = None, refresh_tokens: bool = False
    ) -> dict[str, Any]:
        """Make issued access tokens (and optionally OAuth refresh tokens) expire now."""
        return self._call(
            "POST",
            "/_sandbox/oauth/expire",
            {"vendor": vendor, "token": token, "refresh_tokens": refresh_tokens},
        )

    def close(self) -> None:
        self._client.close()


@contextlib.contextmanager
def running_sandbox(*, startup_timeout: float = 10.0, **opts: Any) -> Iterator[RunningSandbox]:
    """Serve a fresh sandbox on 127.0.0.1 and an ephemeral port; stop it (hanging requests too) on exit."""
    server = make_server("127.0.0.1", 0, **opts)
    thread = threading.Thread(target=server.run, name="botctl-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the sandbox server failed to start")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("the sandbox server did not start in time")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    sandbox = RunningSandbox(server, f"http://127.0.0.1:{port}")
    try:
        yield sandbox
    finally:
        sandbox.close()
        server.stop()
        thread.join(timeout=15)
