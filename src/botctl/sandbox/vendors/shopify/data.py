"""Shopify's seeded data: customers, orders, line items, fulfillments and the store that holds them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botctl.sandbox.oauth.profiles import ClientSpec, Profile
from botctl.sandbox.state import DAY

if TYPE_CHECKING:
    pass


MAX_PAGE = 250
VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
# read_orders alone shows only the last 60 days of orders (docs/vendors.md §7.1).
RECENT_ORDER_WINDOW = 60 * DAY

PRODUCTS = (
    ("Analytical Engine Poster", "AE-POSTER", 2500, "Acme Prints"),
    ("Difference Engine Mug", "DE-MUG", 1400, "Acme Home"),
    ("Punch Card Notebook", "PC-NOTE", 900, "Acme Paper"),
    ("Compiler Tee", "COMP-TEE", 2200, "Acme Apparel"),
)
ORDER_STATES = (  # (financial, fulfillment, cancelled)
    ("PAID", "FULFILLED", False),
    ("PAID", "UNFULFILLED", False),
    ("PENDING", "UNFULFILLED", False),
    ("PAID", "PARTIALLY_FULFILLED", False),
    ("REFUNDED", "UNFULFILLED", True),
    ("PAID", "FULFILLED", False),
    ("PAID", "IN_PROGRESS", False),
)


@dataclass
class ShopifyStore:
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    # access token -> (points available, last refill time)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
TOKEN_SCOPES = ("read_orders", "read_all_orders", "read_customers", "read_fulfillments")
TOKEN_LIMITED_SCOPES = ("read_orders",)
TOKEN = "shpat_0123456789abcdef0123456789abcdef"
TOKEN_LIMITED = "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"
DESCRIBED_API_VERSION = "2026-07"

OAUTH = Profile(
    vendor="shopify",
    title="Shopify",
    authorize_path="/admin/oauth/authorize",
    token_path="/admin/oauth/access_token",
    revoke_path="/admin/oauth/revoke",
    revoke_is_extension=True,
    token_auth_methods=("client_secret_post",),
    revocation_auth_methods=("client_secret_post",),
    scopes=(*TOKEN_SCOPES, "write_orders", "read_returns"),
    access_ttl=3600,
    refresh_ttl=90 * DAY,  # refresh_token_expires_in: 7776000
    confidential=ClientSpec(
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "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", "botctl"
    ),
    scope_separator=",",
    token_type=None,  # Shopify's token response has no token_type
    rotation_grace=True,
    implicit_code_grant_type=True,
    access_token_prefix="shpat_",
    access_token_hex_bytes=16,
    extra_paths={"uninstall": "/admin/api_permissions/current.json"},
    offline_unless_expiring=True,
    refresh_expiry_in_response=True,
)
