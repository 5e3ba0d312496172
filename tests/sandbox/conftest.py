"""Fixtures for tests against the vendor sandbox.

`sandbox` and `sandbox_server` live in tests/conftest.py (shared with the connector and CLI tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from botctl.sandbox.testing import RunningSandbox


@pytest.fixture
def creds(sandbox: RunningSandbox) -> dict[str, Any]:
    return sandbox.credentials()


@pytest.fixture
def seed(sandbox: RunningSandbox) -> dict[str, Any]:
    return sandbox.seed()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


OAUTH_VENDORS = ("calendly", "zendesk", "hubspot", "shopify")
REDIRECT = "http://127.0.0.1:53682/callback"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge): 32 random bytes, base64url (RFC 7636 §4.1-4.2)."""
    import base64
    import hashlib
    import secrets

    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class OAuthHelper:
    """Drives one vendor's sandbox authorization server like a well-behaved client would."""

    REDIRECT = REDIRECT
    VENDORS = OAUTH_VENDORS
    pkce = staticmethod(pkce_pair)

    def __init__(self, sandbox: RunningSandbox, http: httpx.Client) -> None:
        self.sandbox = sandbox
        self.http = http
        self._conf: dict[str, dict[str, Any]] = {}

    def conf(self, vendor: str) -> dict[str, Any]:
        if vendor not in self._conf:
            self._conf[vendor] = self.sandbox.oauth(vendor)
        return self._conf[vendor]

    def auth_params(self, vendor: str, **overrides: Any) -> dict[str, Any]:
        c = self.conf(vendor)
        params = {
            "response_type": "code",
            "client_id": c["client_id"],
            "redirect_uri": REDIRECT,
            "scope": c["scope_separator"].join(c["scopes"]),
            "state": "st-" + vendor,
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, vendor: str, *, decision: str = "approve", **overrides: Any) -> httpx.Response:
        return self.sandbox.consent(
            self.conf(vendor)["authorize_url"], self.auth_params(vendor, **overrides), decision=decision
        )

    def code(self, vendor: str, **overrides: Any) -> tuple[str, str, dict[str, list[str]]]:
        """Authorize with PKCE and approve: (code, verifier, callback query)."""
        from urllib.parse import parse_qs, urlsplit

        verifier, challenge = pkce_pair()
        overrides.setdefault("code_challenge", challenge)
        overrides.setdefault("code_challenge_method", "S256")
        r = self.authorize(vendor, **overrides)
        assert r.status_code == 302, r.text
        query = parse_qs(urlsplit(r.headers["location"]).query)
        return query["code"][0], verifier, query

    def token_request(
        self, vendor: str, data: dict[str, Any], *, public: bool = False, **kw: Any
    ) -> httpx.Response:
        c = self.conf(vendor)
        data = dict(data)
        auth = None
        if public:
            data["client_id"] = c["public_client_id"]
        elif c["token_endpoint_auth_method"] == "client_secret_basic":
            auth = (c["client_id"], c["client_secret"])
        else:
            data.update(client_id=c["client_id"], client_secret=c["client_secret"])
        return self.http.post(kw.pop("url", c["token_url"]), data=data, auth=auth, **kw)

    def exchange(self, vendor: str, code: str, verifier: str | None, **extra: Any) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": extra.pop("redirect_uri", REDIRECT),
        }
        if verifier is not None:
            data["code_verifier"] = verifier
        if vendor == "shopify":
            data["expiring"] = "1"
        data.update(extra.pop("data", {}))
        return self.token_request(vendor, data, **extra)

    def tokens(self, vendor: str, **overrides: Any) -> dict[str, Any]:
        code, verifier, _ = self.code(vendor, **overrides)
        r = self.exchange(vendor, code, verifier)
        assert r.status_code == 200, r.text
        return r.json()

    def refresh(self, vendor: str, refresh_token: str, **kw: Any) -> httpx.Response:
        return self.token_request(
            vendor, {"grant_type": "refresh_token", "refresh_token": refresh_token}, **kw
        )

    def api(self, vendor: str, access_token: str) -> httpx.Response:
        """A read that needs the vendor's basic read scope, with an OAuth access token."""
        base = self.sandbox.vendor_url(vendor)
        if vendor == "calendly":
            return self.http.get(base + "/users/me", headers={"Authorization": f"Bearer {access_token}"})
        if vendor == "zendesk":
            return self.http.get(
                base + "/api/v2/users/search.json",
                params={"query": "email:ada@example.com"},
                headers={"Authorization": f"Bearer {access_token}"},
            )
        if vendor == "hubspot":
            return self.http.get(
                base + "/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {access_token}"}
            )
        return self.http.get(
            base + "/admin/oauth/access_scopes.json", headers={"X-Shopify-Access-Token": access_token}
        )


@pytest.fixture(scope="session")
def plain_http() -> Iterator[httpx.Client]:
    """One client for the whole session (building an httpx.Client costs ~50 ms: its TLS context)."""
    with httpx.Client(timeout=5.0, verify=False) as client:
        yield client


@pytest.fixture
def oauth(sandbox: RunningSandbox, plain_http: httpx.Client) -> OAuthHelper:
    plain_http.cookies.clear()
    return OAuthHelper(sandbox, plain_http)
