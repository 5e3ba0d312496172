"""The seed: who the customers are and the stable ids of everything they own, in every vendor.

`plan()` is what `GET /_sandbox/seed` returns: per vendor, customer email -> ids of that customer's
objects (`Vendor.seed_plan`), plus `_meta` (tenant, customer names, per-vendor account ids from
`Vendor.seed_account`). Vendor modules build their stores from the same id functions, so the ids a
test reads here are the ids the vendor endpoints serve. (A vendor may keep its id functions in its
own module; the eight here predate that.)

Ada owns more objects than fit on one small page (5 of each main list), Grace a few, Linus nothing
(he exists as a customer record where the vendor has one, so "found, but has no orders" is testable).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botctl.sandbox.vendors.base import Vendor

TENANT = "acme"
ACCOUNT_NAME = "Acme Support"
ACCOUNT_EMAIL = "support@acme.example"


@dataclass(frozen=True)
class Customer:
    key: str  # short stable name used to build ids
    email: str
    first_name: str
    last_name: str
    items: int  # how many of each main object the customer owns

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


ADA = Customer("ada", "ada@example.com", "Ada", "Lovelace", 5)
GRACE = Customer("grace", "grace@example.com", "Grace", "Hopper", 2)
LINUS = Customer("linus", "linus@example.com", "Linus", "Torvalds", 0)
CUSTOMERS: tuple[Customer, ...] = (ADA, GRACE, LINUS)

# Order/ticket numbers interleave Ada's and Grace's objects, as they would in a real account.
_SEQUENCE: tuple[tuple[Customer, int], ...] = (
    (ADA, 0),
    (ADA, 1),
    (GRACE, 0),
    (ADA, 2),
    (GRACE, 1),
    (ADA, 3),
    (ADA, 4),
)


def sequence() -> tuple[tuple[Customer, int], ...]:
    """(customer, index) of every seeded main object in creation order (oldest first)."""
    return _SEQUENCE


def seq_no(customer: Customer, index: int) -> int:
    """1-based position of a customer's index-th object in the account's creation order."""
    return _SEQUENCE.index((customer, index)) + 1


# --- stable ids, one function per vendor object kind ---------------------------------------------

_CAL_PREFIX = {"ada": "ADA", "grace": "GRACE"}


def calendly_event_uuid(c: Customer, i: int) -> str:
    # Calendly resource ids are 16 upper-case alphanumerics (developer.calendly.com examples).
    return f"{_CAL_PREFIX[c.key]}EVENT".ljust(15, "0") + str(i + 1)


def calendly_invitee_uuid(c: Customer, i: int) -> str:
    return f"{_CAL_PREFIX[c.key]}INVITEE".ljust(15, "0") + str(i + 1)


CALENDLY_USER = "ACMEUSER00000001"
CALENDLY_ORG = "ACMEORG000000001"
CALENDLY_EVENT_TYPES = ("ETYPEINTRO000001", "ETYPESUPPORT0001")


def calcom_booking_id(c: Customer, i: int) -> int:
    return 5000 + seq_no(c, i)


def calcom_booking_uid(c: Customer, i: int) -> str:
    return f"bk{c.key.capitalize()}{i + 1}".ljust(22, "x")


CALCOM_USER_ID = 1001
CALCOM_EVENT_TYPES = (301, 302)


def zendesk_user_id(c: Customer) -> int:
    return {"ada": 2001, "grace": 2002, "linus": 2003}[c.key]


def zendesk_ticket_id(c: Customer, i: int) -> int:
    return 100 + seq_no(c, i)


ZENDESK_AGENT_ID = 1001


def freshdesk_contact_id(c: Customer) -> int:
    return {"ada": 43000000101, "grace": 43000000102, "linus": 43000000103}[c.key]


def freshdesk_ticket_id(c: Customer, i: int) -> int:
    return 10 + seq_no(c, i)


FRESHDESK_AGENT_ID = 43000000001


def hubspot_contact_id(c: Customer) -> str | None:
    # HubSpot ids are strings on the wire. Linus has no contact: creating him is the happy path,
    # creating Ada again the 409.
    return {"ada": "101", "grace": "102"}.get(c.key)


def hubspot_note_ids(c: Customer) -> list[str]:
    count = {"ada": 4, "grace": 1}.get(c.key, 0)
    base = {"ada": 500, "grace": 600}.get(c.key, 0)
    return [str(base + n + 1) for n in range(count)]


def hubspot_ticket_ids(c: Customer) -> list[str]:
    count = {"ada": 3, "grace": 1}.get(c.key, 0)
    base = {"ada": 700, "grace": 800}.get(c.key, 0)
    return [str(base + n + 1) for n in range(count)]


HUBSPOT_PORTAL_ID = 4000001


def stripe_customer_id(c: Customer) -> str:
    # Stripe ids: prefix + 14 alphanumerics.
    return "cus_" + {"ada": "AdaLovelace001", "grace": "GraceHopper001", "linus": "LinusTorvald01"}[c.key]


def stripe_invoice_id(c: Customer, i: int) -> str:
    return f"in_{c.key.capitalize()}Invoice".ljust(17, "0") + f"{i + 1}"


def stripe_subscription_ids(c: Customer) -> list[str]:
    count = {"ada": 3, "grace": 1}.get(c.key, 0)
    return [f"sub_{c.key.capitalize()}Sub".ljust(17, "0") + f"{n + 1}" for n in range(count)]


STRIPE_ACCOUNT_ID = "acct_1SandboxAcme0001"


def shopify_customer_id(c: Customer) -> int:
    return {"ada": 7000000001, "grace": 7000000002, "linus": 7000000003}[c.key]


def shopify_order_id(c: Customer, i: int) -> int:
    return 5000000000 + seq_no(c, i)


def shopify_order_name(c: Customer, i: int) -> str:
    return f"#{1000 + seq_no(c, i)}"


def woo_customer_id(c: Customer) -> int:
    return {"ada": 11, "grace": 12, "linus": 13}[c.key]


def woo_order_id(c: Customer, i: int) -> int:
    return 100 + seq_no(c, i)


def plan(vendors: Iterable[Vendor]) -> dict[str, Any]:
    """The JSON of `GET /_sandbox/seed`: each vendor's `seed_plan` per customer, its `seed_account`."""
    vendors = list(vendors)
    out: dict[str, Any] = {v.name: {c.email: v.seed_plan(c) for c in CUSTOMERS} for v in vendors}
    out["_meta"] = {
        "tenant": TENANT,
        "customers": {c.email: c.name for c in CUSTOMERS},
        "accounts": {v.name: v.seed_account() for v in vendors},
    }
    return out


def owned(c: Customer) -> range:
    """The indexes of a customer's main objects (`items` of them)."""
    return range(c.items)
