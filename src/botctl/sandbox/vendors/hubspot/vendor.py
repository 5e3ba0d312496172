"""The HubSpot vendor: its tokens, OAuth profile and hooks, seed plan, errors, authentication, rate limits
and routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request  # noqa: TID253
from starlette.responses import Response  # noqa: TID253
from starlette.routing import Route  # noqa: TID253

from botctl.sandbox import seed
from botctl.sandbox.credentials import StaticCredential
from botctl.sandbox.state import DAY, SandboxState
from botctl.sandbox.tokens import AccessToken
from botctl.sandbox.vendors.base import Ctx, FaultReply, Vendor
from botctl.sandbox.wire import (
    bearer_token,
    dumps,
    empty_response,
    iso,
    json_response,
    new_uuid,
)

from .data import (
    OAUTH,
    OAUTH_STATUS,
    TOKEN,
    TOKEN_LIMITED,
    TOKEN_LIMITED_SCOPES,
    TOKEN_SCOPES,
    HubspotStore,
    object_record,
    stamp_props,
)
from .handlers import (
    access_token_info,
    account_details,
    create_object,
    error_response,
    get_object,
    introspect,
    list_associations,
    list_objects,
    search_objects,
    update_object,
)

if TYPE_CHECKING:
    from botctl.sandbox.oauth.routes import OAuthRoutes


class Hubspot(Vendor):
    name = "hubspot"
    request_id_header = "X-HubSpot-Correlation-Id"

    oauth_profile = OAUTH

    def static_credentials(self) -> list[StaticCredential]:
        return [StaticCredential(TOKEN, TOKEN_SCOPES), StaticCredential(TOKEN_LIMITED, TOKEN_LIMITED_SCOPES)]

    def describe_credentials(self) -> dict[str, Any]:
        return {
            "auth": "bearer",
            "kind": "private_app_token",
            "access_token": TOKEN,
            "scopes": list(TOKEN_SCOPES),
            "hub_id": seed.HUBSPOT_PORTAL_ID,
            "limited": {"access_token": TOKEN_LIMITED, "scopes": list(TOKEN_LIMITED_SCOPES)},
        }

    def seed_plan(self, customer: seed.Customer) -> dict[str, Any]:
        return {
            "contact_id": seed.hubspot_contact_id(customer),
            "notes": seed.hubspot_note_ids(customer),
            "tickets": seed.hubspot_ticket_ids(customer),
        }

    def seed_account(self) -> dict[str, Any]:
        return {"portal_id": seed.HUBSPOT_PORTAL_ID}

    # -- OAuth: the v1 endpoints, HubSpot's error bodies ------------------------------------------------

    def oauth_describe(self, root: str) -> dict[str, Any]:
        return {
            "token_url_v1": root + "/oauth/v1/token",
            "refresh_token_url_v1": root + OAUTH.extra_paths["refresh_tokens_v1"] + "/{refresh_token}",
            "introspect_url": root + "/oauth/v3/token/introspect",
        }

    def oauth_error(self, body: dict[str, Any], grant_type: str | None) -> dict[str, Any]:
        key = (body["error"], grant_type if body["error"] == "invalid_grant" else None)
        status, message = OAUTH_STATUS.get(
            key, (body["error"].upper(), body.get("error_description") or body["error"])
        )
        return {**body, "status": status, "message": message, "correlationId": new_uuid()}

    def oauth_routes(self, routes: OAuthRoutes) -> list[Route]:
        async def refresh_token(ctx: Ctx) -> Response:
            """v1 `GET|DELETE /oauth/v1/refresh-tokens/{token}`. DELETE removes only the refresh token:
            access tokens live until expiry and the app stays installed."""
            store = ctx.state.oauth.stores[self.name]
            record = store.refresh_tokens.get(ctx.request.path_params["token"])
            family = store.families.get(record.family_id) if record else None
            if record is None or family is None or record.status != "active" or family.revoked:
                return json_response(
                    {
                        "status": "error",
                        "message": "refresh token not found",
                        "correlationId": new_uuid(),
                        "category": "OBJECT_NOT_FOUND",
                    },
                    404,
                )
            if ctx.request.method == "DELETE":
                record.status = "revoked"
                ctx.state.stats.record_oauth_event(self.name, "revocation")
                return empty_response(204)
            return json_response(
                {
                    "token": record.token,
                    "user": seed.ACCOUNT_EMAIL,
                    "hub_domain": "acme.example",
                    "scopes": record.scope.split(),
                    "hub_id": seed.HUBSPOT_PORTAL_ID,
                    "client_id": record.client_id,
                    "user_id": 9001,
                    "token_type": "refresh",
                }
            )

        path = OAUTH.extra_paths["refresh_tokens_v1"] + "/{token}"
        return [Route(path, self.endpoint(refresh_token, auth=False), methods=["GET", "DELETE"])]

    def new_store(self, state: SandboxState) -> HubspotStore:
        store = HubspotStore()
        t0 = state.anchor - 100 * DAY
        for c in seed.CUSTOMERS:
            cid = seed.hubspot_contact_id(c)
            if cid is None:
                continue
            contact = object_record(
                cid,
                {
                    "email": c.email,
                    "firstname": c.first_name,
                    "lastname": c.last_name,
                    "lifecyclestage": "customer",
                    "phone": None,
                    "company": None,
                },
                t0,
            )
            stamp_props("contacts", contact, t0, created=True)
            store.objects["contacts"][cid] = contact
            for n, nid in enumerate(seed.hubspot_note_ids(c)):
                ts = t0 + (n + 1) * 5 * DAY
                note = object_record(
                    nid,
                    {
                        "hs_note_body": f"<p>Call with {c.first_name}: follow-up #{n + 1}</p>",
                        "hs_timestamp": iso(ts, fraction=3),
                    },
                    ts,
                )
                stamp_props("notes", note, ts, created=True)
                store.objects["notes"][nid] = note
                store.associate("notes", nid, "contacts", cid)
            for n, tid in enumerate(seed.hubspot_ticket_ids(c)):
                ts = t0 + (n + 2) * 7 * DAY
                ticket = object_record(
                    tid,
                    {
                        "subject": f"{c.first_name}'s request #{n + 1}",
                        "content": "Customer asked about their order.",
                        "hs_pipeline": "0",
                        "hs_pipeline_stage": "1" if n % 2 == 0 else "4",
                        "hs_ticket_priority": "MEDIUM",
                        "hs_ticket_category": None,
                    },
                    ts,
                )
                stamp_props("tickets", ticket, ts, created=True)
                store.objects["tickets"][tid] = ticket
                store.associate("tickets", tid, "contacts", cid)
        return store

    def new_request_id(self) -> str:
        return new_uuid()

    def rate_limit_headers(self, used: int, reset_in: int) -> dict[str, str]:
        # docs/vendors.md §5.4 (usage-details doc): per-10-second burst plus daily.
        return {
            "X-HubSpot-RateLimit-Daily": "500000",
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, 500000 - used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": str(max(0, 190 - used % 190)),
            "X-HubSpot-RateLimit-Secondly": "19",
            "X-HubSpot-RateLimit-Secondly-Remaining": "18",
        }

    def fault(self, kind: str, status: int, request_path: str) -> FaultReply:
        if status == 429:
            body: dict[str, Any] = {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": new_uuid(),
                "policyName": "SECONDLY",
            }
        else:
            body = {
                "status": "error",
                "message": "internal error",
                "correlationId": new_uuid(),
                "category": "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE",
            }
        return FaultReply(status, {"content-type": "application/json;charset=utf-8"}, dumps(body))

    def not_found(self, request: Request) -> Response:
        return error_response(404, "Unable to route request: no route found for path", "OBJECT_NOT_FOUND")

    def authenticate(self, ctx: Ctx) -> AccessToken | Response:
        token = bearer_token(ctx.request)
        if token is None:
            return error_response(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
        check = ctx.state.tokens.check(self.name, token)
        if check.ok and check.token is not None:
            return check.token
        if check.status == "expired" and check.token and check.token.expires_at is not None:
            ago = max(1, int((ctx.now - check.token.expires_at) // 60))
            return error_response(
                401,
                f"The OAuth token used to make this call expired {ago} minute(s) ago.",
                "EXPIRED_AUTHENTICATION",
            )
        return error_response(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
            "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        )

    def require(self, ctx: Ctx, scope: str) -> Response | None:
        granted = ctx.principal.scopes if ctx.principal else frozenset()
        options = {scope}
        if scope.endswith(".read"):
            options.add(scope[: -len(".read")] + ".write")
        if "*" in granted or options & granted:
            return None
        return json_response(
            {
                "status": "error",
                "message": "This app hasn't been granted all required scopes to make this call. Read more about "
                "required scopes here: https://developers.hubspot.com/scopes.",
                "correlationId": new_uuid(),
                "errors": [
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
                "category": "MISSING_SCOPES",
            },
            403,
        )

    def build_routes(self) -> list[Route]:
        return [
            self.route("/account-info/v3/details", account_details, ["GET"]),
            Route("/oauth/v3/token/introspect", self.endpoint(introspect, auth=False), methods=["POST"]),
            Route(
                "/oauth/v1/access-tokens/{token}",
                self.endpoint(access_token_info, auth=False),
                methods=["GET"],
            ),
            self.route("/crm/v3/objects/{object_type}", list_objects, ["GET"]),
            self.route("/crm/v3/objects/{object_type}", create_object, ["POST"]),
            self.route("/crm/v3/objects/{object_type}/search", search_objects, ["POST"]),
            self.route("/crm/v3/objects/{object_type}/{object_id}", get_object, ["GET"]),
            self.route("/crm/v3/objects/{object_type}/{object_id}", update_object, ["PATCH"]),
            self.route(
                "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}", list_associations, ["GET"]
            ),
        ]


VENDOR = Hubspot()
