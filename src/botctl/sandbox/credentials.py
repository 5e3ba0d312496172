# ruff: noqa: S105  (sandbox-only fake credentials, see the docstring)
"""The sandbox's static credentials, one stand-in for each vendor's static-credential option.

Sandbox-only values: they open nothing but this local fake, so they live in the source. Each
has the prefix/shape of the real thing (CONNECTORS.md §1.1-8.1) so prefix checks in clients behave.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import seed
from .tokens import TokenRegistry

CALENDLY_SCOPES = (
    "users:read",
    "scheduled_events:read",
    "scheduled_events:write",
    "event_types:read",
    "availability:read",
    "organizations:read",
)
CALENDLY_LIMITED_SCOPES = ("users:read", "scheduled_events:read")
ZENDESK_SCOPES = ("read", "write")
ZENDESK_LIMITED_SCOPES = ("read",)
HUBSPOT_SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "tickets")
HUBSPOT_LIMITED_SCOPES = ("oauth", "crm.objects.contacts.read")
SHOPIFY_SCOPES = ("read_orders", "read_all_orders", "read_customers", "read_fulfillments")
SHOPIFY_LIMITED_SCOPES = ("read_orders",)

# Stripe restricted-key permissions use the names Stripe's 403 message cites ("Having the
# 'rak_subscription_read' permission would allow this request to continue."). Write implies read.
STRIPE_FULL_PERMISSIONS = (
    "rak_balance_read",
    "rak_accounts_kyc_basic_read",
    "rak_customer_write",
    "rak_invoice_read",
    "rak_subscription_write",
    "rak_charge_read",
    "rak_refund_read",
)
STRIPE_LIMITED_PERMISSIONS = ("rak_customer_read", "rak_subscription_read")

CALENDLY_PAT = "eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiSFMyNTYifQ.sandbox-calendly-pat-acme.c2FuZGJveA"
CALENDLY_PAT_LIMITED = "eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiSFMyNTYifQ.sandbox-calendly-pat-readonly.c2FuZGJveA"
CALCOM_API_KEY = "cal_test_5a4e1b0c8d2f4e6a9b7c3d1e0f2a4b6c"
ZENDESK_OAUTH_TOKEN = "zd-sandbox-oauth-9f1c2b3a4d5e6f708192a3b4c5d6e7f8"
ZENDESK_OAUTH_TOKEN_LIMITED = "zd-sandbox-oauth-readonly-0a1b2c3d4e5f60718293a4b5"
ZENDESK_API_TOKEN = "zdApiTokenSandboxAcme0123456789abcdef0123"
FRESHDESK_API_KEY = "fdSandboxAcmeKey0123"
HUBSPOT_TOKEN = "pat-na1-5d3c1e2f-0a4b-4c6d-8e9f-0123456789ab"
HUBSPOT_TOKEN_LIMITED = "pat-na1-0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
STRIPE_FULL_KEY = "rk_test_51SandboxAcmeFullAccess0000000000000000000000000000000000000000000000000000FULL"
STRIPE_LIMITED_KEY = "rk_test_51SandboxAcmeLimitedAccess00000000000000000000000000000000000000000000000LTD"
STRIPE_SECRET_KEY = "sk_test_51SandboxAcmeSecretKey000000000000000000000000000000000000000000000000000SEC"
SHOPIFY_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
SHOPIFY_TOKEN_LIMITED = "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"
SHOPIFY_API_VERSION = "2026-07"
WOO_CONSUMER_KEY = "ck_0123456789abcdef0123456789abcdef01234567"
WOO_CONSUMER_SECRET = "cs_0123456789abcdef0123456789abcdef01234567"
WOO_RO_CONSUMER_KEY = "ck_fedcba9876543210fedcba9876543210fedcba98"
WOO_RO_CONSUMER_SECRET = "cs_fedcba9876543210fedcba9876543210fedcba98"

TENANT = seed.TENANT


def install(registry: TokenRegistry) -> None:
    """Put every static credential in the registry (at start-up and on reset)."""
    add = registry.add_static
    add("calendly", CALENDLY_PAT, CALENDLY_SCOPES)
    add("calendly", CALENDLY_PAT_LIMITED, CALENDLY_LIMITED_SCOPES)
    add("calcom", CALCOM_API_KEY, ("*",), subject={"kind": "api_key"})
    add("zendesk", ZENDESK_OAUTH_TOKEN, ZENDESK_SCOPES, tenant=TENANT)
    add("zendesk", ZENDESK_OAUTH_TOKEN_LIMITED, ZENDESK_LIMITED_SCOPES, tenant=TENANT)
    add(
        "zendesk",
        ZENDESK_API_TOKEN,
        ("*",),
        tenant=TENANT,
        subject={"kind": "api_token", "email": seed.ACCOUNT_EMAIL},
    )
    add("freshdesk", FRESHDESK_API_KEY, ("*",), tenant=TENANT)
    add("hubspot", HUBSPOT_TOKEN, HUBSPOT_SCOPES)
    add("hubspot", HUBSPOT_TOKEN_LIMITED, HUBSPOT_LIMITED_SCOPES)
    add("stripe", STRIPE_FULL_KEY, STRIPE_FULL_PERMISSIONS)
    add("stripe", STRIPE_LIMITED_KEY, STRIPE_LIMITED_PERMISSIONS)
    add("stripe", STRIPE_SECRET_KEY, ("*",))
    add("shopify", SHOPIFY_TOKEN, SHOPIFY_SCOPES, tenant=TENANT)
    add("shopify", SHOPIFY_TOKEN_LIMITED, SHOPIFY_LIMITED_SCOPES, tenant=TENANT)
    add(
        "woocommerce",
        WOO_CONSUMER_KEY,
        ("read", "write"),
        tenant=TENANT,
        subject={"secret": WOO_CONSUMER_SECRET, "key_id": 1},
    )
    add(
        "woocommerce",
        WOO_RO_CONSUMER_KEY,
        ("read",),
        tenant=TENANT,
        subject={"secret": WOO_RO_CONSUMER_SECRET, "key_id": 2},
    )


def describe(base_url: str, *, device_flow: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON of `GET /_sandbox/credentials`; `base_url` is the sandbox's own origin.

    Each OAuth vendor (calendly, zendesk, hubspot, shopify) also gets an `oauth` block: its
    authorization server's endpoints and registered clients (`device_flow`: vendors with the
    sandbox's device flow switched on)."""
    from .oauth import profiles

    def at(path: str) -> dict[str, str]:
        return {"base_path": path, "base_url": base_url.rstrip("/") + path}

    enabled = set(device_flow)
    described = _describe(base_url, at)
    for vendor in profiles.OAUTH_VENDORS:
        described[vendor]["oauth"] = profiles.describe(base_url, vendor, device_enabled=vendor in enabled)
    return described


def _describe(base_url: str, at: Any) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "calendly": {
            **at("/calendly"),
            "auth": "bearer",
            "kind": "personal_access_token",
            "access_token": CALENDLY_PAT,
            "scopes": list(CALENDLY_SCOPES),
            "limited": {"access_token": CALENDLY_PAT_LIMITED, "scopes": list(CALENDLY_LIMITED_SCOPES)},
        },
        "calcom": {
            **at("/calcom/v2"),
            "auth": "bearer",
            "kind": "api_key",
            "api_key": CALCOM_API_KEY,
            "api_versions": {
                "bookings": "2024-08-13",
                "bookings_cursor": "2026-05-01",
                "slots": "2024-09-04",
                "event_types": "2024-06-14",
            },
        },
        "zendesk": {
            **at(f"/zendesk/{TENANT}"),
            "subdomain": TENANT,
            "auth": "bearer",
            "kind": "oauth_access_token",
            "access_token": ZENDESK_OAUTH_TOKEN,
            "scopes": list(ZENDESK_SCOPES),
            "limited": {"access_token": ZENDESK_OAUTH_TOKEN_LIMITED, "scopes": list(ZENDESK_LIMITED_SCOPES)},
            "api_token": {
                "email": seed.ACCOUNT_EMAIL,
                "token": ZENDESK_API_TOKEN,
                "basic_username": f"{seed.ACCOUNT_EMAIL}/token",
            },
        },
        "freshdesk": {
            **at(f"/freshdesk/{TENANT}"),
            "domain": TENANT,
            "auth": "basic_key_x",
            "kind": "api_key",
            "api_key": FRESHDESK_API_KEY,
        },
        "hubspot": {
            **at("/hubspot"),
            "auth": "bearer",
            "kind": "private_app_token",
            "access_token": HUBSPOT_TOKEN,
            "scopes": list(HUBSPOT_SCOPES),
            "hub_id": seed.HUBSPOT_PORTAL_ID,
            "limited": {"access_token": HUBSPOT_TOKEN_LIMITED, "scopes": list(HUBSPOT_LIMITED_SCOPES)},
        },
        "stripe": {
            **at("/stripe"),
            "auth": "bearer",
            "kind": "restricted_key",
            "api_key": STRIPE_FULL_KEY,
            "permissions": list(STRIPE_FULL_PERMISSIONS),
            "limited": {"api_key": STRIPE_LIMITED_KEY, "permissions": list(STRIPE_LIMITED_PERMISSIONS)},
            "secret_key": STRIPE_SECRET_KEY,
            "account_id": seed.STRIPE_ACCOUNT_ID,
        },
        "shopify": {
            **at(f"/shopify/{TENANT}"),
            "shop": TENANT,
            "auth": "shopify_header",
            "kind": "admin_api_access_token",
            "access_token": SHOPIFY_TOKEN,
            "scopes": list(SHOPIFY_SCOPES),
            "api_version": SHOPIFY_API_VERSION,
            "graphql_path": f"/admin/api/{SHOPIFY_API_VERSION}/graphql.json",
            "limited": {"access_token": SHOPIFY_TOKEN_LIMITED, "scopes": list(SHOPIFY_LIMITED_SCOPES)},
        },
        "woocommerce": {
            **at(f"/woocommerce/{TENANT}"),
            "store": TENANT,
            "auth": "basic_key_secret",
            "kind": "rest_api_key",
            "consumer_key": WOO_CONSUMER_KEY,
            "consumer_secret": WOO_CONSUMER_SECRET,
            "permissions": "read_write",
            "read_only": {"consumer_key": WOO_RO_CONSUMER_KEY, "consumer_secret": WOO_RO_CONSUMER_SECRET},
        },
    }
