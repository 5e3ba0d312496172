"""The Starlette side of the OAuth servers: endpoints under each vendor's prefix, HTML pages.

Every route is mounted with the vendor's own routes (so the middleware counts it, adds the
vendor's headers and can inject faults) and goes through the vendor's tenant check.
"""

from __future__ import annotations

import html
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.requests import Request  # noqa: TID253
from starlette.responses import HTMLResponse, Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.wire import dumps, json_response

from .adapters import OAuthResponse, SandboxOAuth2Request
from .models import PendingConsent
from .profiles import GRANT_NAMES, METADATA_PATH, USER, Profile
from .server import VendorAuthorizationServer

if TYPE_CHECKING:
    from botctl.sandbox.vendors.base import Ctx, Vendor


def routes_for(vendor: Vendor) -> list[Route]:
    """The OAuth routes of one vendor (none for vendors without OAuth in the sandbox)."""
    profile = vendor.oauth_profile
    if profile is None:
        return []
    h = OAuthRoutes(vendor, profile)
    public = {"auth": False}
    routes = [
        Route(METADATA_PATH, vendor.endpoint(h.metadata, **public), methods=["GET"]),
        Route(profile.authorize_path, vendor.endpoint(h.authorize, **public), methods=["GET", "POST"]),
        Route(profile.token_path, vendor.endpoint(h.token, **public), methods=["POST"]),
        *[Route(p, vendor.endpoint(h.token, **public), methods=["POST"]) for p in profile.token_aliases],
        Route(profile.revoke_path, vendor.endpoint(h.revoke, **public), methods=["POST"]),
        Route(
            profile.device_authorization_path,
            vendor.endpoint(h.device_authorization, **public),
            methods=["POST"],
        ),
        Route(
            profile.device_verification_path,
            vendor.endpoint(h.device_page, **public),
            methods=["GET", "POST"],
        ),
    ]
    routes += vendor.oauth_routes(h)  # its own token management, where it has some
    return routes


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def read_oauth_request(
    ctx: Ctx,
    *,
    json_body: bool = False,
    query: list[tuple[str, str]] | None = None,
    method: str | None = None,
    uri: str | None = None,
    implicit_code_grant_type: bool = False,
) -> SandboxOAuth2Request:
    """Read the Starlette request (body included) into an authlib request.

    `implicit_code_grant_type`: Shopify's code exchange is just client_id, client_secret and code,
    without grant_type."""
    request = ctx.request
    form: list[tuple[str, str]] = []
    if request.method == "POST" and method is None:
        raw = await request.body()
        if json_body and "json" in request.headers.get("content-type", ""):
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = None
            if isinstance(data, dict):
                form = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
        else:
            form = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        keys = {k for k, _ in form}
        if implicit_code_grant_type and "grant_type" not in keys and "code" in keys:
            form.append(("grant_type", "authorization_code"))
    return SandboxOAuth2Request(
        method or request.method,
        uri or str(request.url),
        request.headers,
        query=list(request.query_params.multi_items()) if query is None else query,
        form=form,
        origin=_origin(request),
    )


class OAuthRoutes:
    def __init__(self, vendor: Vendor, profile: Profile) -> None:
        self.vendor = vendor
        self.profile = profile
        self.name = profile.vendor

    def server(self, ctx: Ctx) -> VendorAuthorizationServer:
        return ctx.state.oauth.servers[self.name]

    def render(self, response: OAuthResponse, *, grant_type: str | None = None) -> Response:
        body = response.body
        headers = dict(response.headers)
        if isinstance(body, dict):
            if "error" in body:
                body = self.vendor.oauth_error(body, grant_type)
            content = dumps(body)
        else:
            content = (body or "").encode() if isinstance(body, str) else (body or b"")
        return Response(content, status_code=response.status, headers=headers)

    # -- RFC 8414 ------------------------------------------------------------------------------------------

    async def metadata(self, ctx: Ctx) -> Response:
        return json_response(self.server(ctx).metadata(_origin(ctx.request)))

    # -- authorization endpoint ------------------------------------------------------------------------------

    async def authorize(self, ctx: Ctx) -> Response:
        server = self.server(ctx)
        store = server.store
        if ctx.request.method == "POST":
            form = dict(parse_qsl((await ctx.request.body()).decode("utf-8", "replace")))
            pending = store.consents.pop(form.get("consent_id", ""), None)
            if pending is None or pending.expires_at <= server.now():
                return _error_page(
                    self.profile,
                    "invalid_request",
                    "This authorization request is unknown or has expired. Start again from the app.",
                )
            decision = form.get("decision")
            if decision not in ("approve", "deny"):
                store.consents[pending.id] = pending
                return _error_page(self.profile, "invalid_request", "Choose Approve or Deny.")
            req = await read_oauth_request(ctx, query=pending.query, method="GET", uri=pending.uri)
            try:
                grant = server.get_consent_grant(req, end_user=USER)
            except OAuth2Error as error:
                return self._authorize_error(server, req, error)
            granted = USER if decision == "approve" else None
            return self.render(server.create_authorization_response(req, grant_user=granted, grant=grant))

        query = list(ctx.request.query_params.multi_items())
        if self.profile.scope_separator != " ":
            # Shopify: `scope=read_orders,read_customers`.
            query = [
                (k, v.replace(self.profile.scope_separator, " ") if k == "scope" else v) for k, v in query
            ]
        req = await read_oauth_request(ctx, query=query)
        try:
            grant = server.get_consent_grant(req, end_user=USER)
        except OAuth2Error as error:
            return self._authorize_error(server, req, error)
        if ctx.state.config.auto_approve:
            return self.render(server.create_authorization_response(req, grant_user=USER, grant=grant))
        consent = PendingConsent(
            secrets.token_urlsafe(24), str(ctx.request.url), query, server.now() + store.CONSENT_TTL
        )
        store.consents[consent.id] = consent
        return _consent_page(self.profile, ctx, grant, consent)

    def _authorize_error(
        self, server: VendorAuthorizationServer, req: SandboxOAuth2Request, error: OAuth2Error
    ) -> Response:
        if error.redirect_uri:
            # The client and its redirect URI are valid: tell the client (RFC 6749 §4.1.2.1).
            response = server.handle_error_response(req, error)
            return self.render(server.add_authorization_response_params(response))
        # Never redirect to an unverified URI (RFC 9700 §4.1: no open redirector).
        return _error_page(
            self.profile, error.error or "invalid_request", error.get_error_description() or ""
        )

    # -- token endpoint ----------------------------------------------------------------------------------------

    async def token(self, ctx: Ctx) -> Response:
        server = self.server(ctx)
        req = await read_oauth_request(
            ctx,
            json_body=self.profile.json_token_body,
            implicit_code_grant_type=self.profile.implicit_code_grant_type,
        )
        grant_type = req.payload.data.get("grant_type")
        response = server.create_token_response(req)
        stats = ctx.state.stats
        if response.status == 200:
            stats.record_grant(self.name, GRANT_NAMES.get(grant_type or "", grant_type or "none"))
        else:
            error = response.body.get("error", "unknown") if isinstance(response.body, dict) else "unknown"
            stats.record_grant_error(self.name, error)
        return self.render(response, grant_type=grant_type)

    # -- RFC 7009 -----------------------------------------------------------------------------------------------

    async def revoke(self, ctx: Ctx) -> Response:
        server = self.server(ctx)
        req = await read_oauth_request(ctx)
        return self.render(server.create_endpoint_response("revocation", req))

    # -- RFC 8628 -----------------------------------------------------------------------------------------------

    async def device_authorization(self, ctx: Ctx) -> Response:
        if not ctx.state.oauth.device_enabled(self.name):
            return self.vendor.not_found(ctx.request)
        server = self.server(ctx)
        req = await read_oauth_request(ctx)
        return self.render(server.create_endpoint_response("device_authorization", req))

    async def device_page(self, ctx: Ctx) -> Response:
        hub = ctx.state.oauth
        if not hub.device_enabled(self.name):
            return self.vendor.not_found(ctx.request)
        if ctx.request.method == "GET":
            return _device_page(self.profile, ctx, ctx.request.query_params.get("user_code", ""))
        form = dict(parse_qsl((await ctx.request.body()).decode("utf-8", "replace")))
        user_code = form.get("user_code", "")
        credential = hub.stores[self.name].device_by_user_code(user_code)
        if credential is None:
            return _device_page(
                self.profile, ctx, user_code, error="That code is not valid. Check it and try again."
            )
        problem = hub.decide_device(credential, form.get("decision") == "approve")
        if problem == "expired_token":
            return _device_page(
                self.profile, ctx, user_code, error="That code has expired. Start again on your device."
            )
        if problem:
            return _device_page(self.profile, ctx, user_code, error="That code was already used.")
        return _device_done(self.profile, credential.status == "approved")

    def revoke_record(self, ctx: Ctx, record: Any) -> None:
        """Revoke an access token and, when it came from a grant, the grant's whole family."""
        family_id = record.subject.get("family_id")
        if family_id:
            ctx.state.oauth.revoke_family(self.name, family_id, "revoked")
        ctx.state.tokens.revoke(record.token, self.name)
        ctx.state.stats.record_oauth_event(self.name, "revocation")


# --- HTML pages: plain, no external assets -------------------------------------------------------------

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}
main{max-width:34rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}code{background:#eef0f3;padding:0 .25em;border-radius:3px}
.note{color:#5b6170;font-size:.9rem}.error{color:#a4161a}
button{font-size:1rem;padding:.5rem 1.4rem;border-radius:6px;border:1px solid #888;margin-right:.5rem;cursor:pointer}
button.primary{background:#1d4ed8;border-color:#1d4ed8;color:#fff}
input{font-size:1.2rem;padding:.4rem;letter-spacing:.1em;text-transform:uppercase}
"""
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    e = html.escape
    doc = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>\n"
    )
    return HTMLResponse(doc, status_code=status, headers=_HEADERS)


def _consent_page(profile: Profile, ctx: Ctx, grant: Any, consent: PendingConsent) -> HTMLResponse:
    e = html.escape
    client = grant.client
    scopes = "".join(f"<li><code>{e(s)}</code></li>" for s in (grant.request.scope or "").split())
    body = (
        f"<h1>{e(profile.title)} (sandbox): authorize {e(client.spec.name)}?</h1>"
        f"<p><strong>{e(client.spec.name)}</strong> (client <code>{e(client.client_id)}</code>) wants access "
        f"to the <strong>{e(seed.TENANT)}</strong> account as {e(USER.name)} &lt;{e(USER.email)}&gt;.</p>"
        f"<p>It asks for:</p><ul>{scopes}</ul>"
        f'<p class="note">Afterwards you go back to <code>{e(grant.redirect_uri or "")}</code>.</p>'
        f'<form method="post" action="{e(ctx.request.url.path)}">'
        f'<input type="hidden" name="consent_id" value="{e(consent.id)}">'
        '<button class="primary" type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form>"
    )
    return _page(f"Authorize {client.spec.name} - {profile.title} sandbox", body)


def _error_page(profile: Profile, error: str, description: str) -> HTMLResponse:
    e = html.escape
    body = (
        f"<h1>{e(profile.title)} (sandbox): authorization failed</h1>"
        f'<p class="error"><code>{e(error)}</code>: {e(description)}</p>'
        '<p class="note">The request was not sent back to the app because it could not be verified.</p>'
    )
    return _page(f"Authorization error - {profile.title} sandbox", body, 400)


def _device_page(profile: Profile, ctx: Ctx, user_code: str, *, error: str | None = None) -> HTMLResponse:
    e = html.escape
    problem = f'<p class="error">{e(error)}</p>' if error else ""
    body = (
        f"<h1>{e(profile.title)} (sandbox): connect a device</h1>"
        "<p>Enter the code shown on your device, then approve or deny its access to the "
        f"<strong>{e(seed.TENANT)}</strong> account.</p>{problem}"
        f'<form method="post" action="{e(ctx.request.url.path)}">'
        f'<p><input name="user_code" value="{e(user_code)}" autocomplete="off" required></p>'
        '<button class="primary" type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form>"
    )
    return _page(f"Connect a device - {profile.title} sandbox", body, 400 if error else 200)


def _device_done(profile: Profile, approved: bool) -> HTMLResponse:
    e = html.escape
    text = (
        "Device connected. You can go back to it now."
        if approved
        else "Access denied. The device was not connected."
    )
    return _page(f"{profile.title} sandbox", f"<h1>{e(profile.title)} (sandbox)</h1><p>{e(text)}</p>")
