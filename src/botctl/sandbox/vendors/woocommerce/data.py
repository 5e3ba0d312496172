"""WooCommerce's seeded data: customers, orders, notes and the store that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botctl.sandbox import seed

ORDER_STATUSES = (
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
    "checkout-draft",
)
ADA_STATUSES = ("completed", "processing", "on-hold", "cancelled", "pending")
GRACE_STATUSES = ("completed", "processing")
MAX_PER_PAGE = 100
PRODUCTS = (
    (31, "Analytical Engine Poster", "AE-POSTER", "25.00"),
    (32, "Difference Engine Mug", "DE-MUG", "14.00"),
    (33, "Punch Card Notebook", "PC-NOTE", "9.00"),
)


@dataclass
class WooStore:
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_note_id: int = 900


def local_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def address(c: seed.Customer, n: int, *, billing: bool) -> dict[str, Any]:
    out = {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": "",
        "address_1": f"{10 + n} Analytical Row",
        "address_2": "",
        "city": "London",
        "state": "",
        "postcode": f"N{n + 1} 1AA",
        "country": "GB",
    }
    if billing:
        out.update(email=c.email, phone="")
    else:
        out["phone"] = ""
    return out


# Sandbox-only credentials: they open nothing but this local fake (each has the real one's shape).
CONSUMER_KEY = "ck_0123456789abcdef0123456789abcdef01234567"
CONSUMER_SECRET = "cs_0123456789abcdef0123456789abcdef01234567"
RO_CONSUMER_KEY = "ck_fedcba9876543210fedcba9876543210fedcba98"
RO_CONSUMER_SECRET = "cs_fedcba9876543210fedcba9876543210fedcba98"
