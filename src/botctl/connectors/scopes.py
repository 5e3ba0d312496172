"""Does a connection's granted scope set cover what an action needs? Vendor by vendor.

A plain `needed in granted` check is wrong for most of the eight: a broader grant covers the
narrow scope an action names. Zendesk's `read`/`write` cover every `<resource>:read`/`:write`;
Calendly, HubSpot, Stripe, Cal.com and Shopify let a write permission imply the matching read;
WooCommerce keys are `read`, `write` or `read_write`.
"""

from __future__ import annotations

from collections.abc import Iterable


def _alternatives(connector: str, needed: str) -> set[str]:
    """Every granted scope that would cover `needed` (including itself)."""
    alt = {needed, "*"}
    if connector == "zendesk" and ":" in needed:
        alt.add(needed.split(":", 1)[1])  # "tickets:read" is covered by "read"
    elif connector == "calendly":
        if needed.endswith(":read"):
            alt.add(needed[: -len(":read")] + ":write")
        if needed == "availability:read":
            # The scope catalog files available times under event_types (CONNECTORS.md §1.1).
            alt |= {"event_types:read", "event_types:write"}
    elif connector == "hubspot" and needed.endswith(".read"):
        alt.add(needed[: -len(".read")] + ".write")
    elif connector == "stripe" and needed.endswith("_read"):
        alt.add(needed[: -len("_read")] + "_write")
    elif connector == "calcom" and needed.endswith("_READ"):
        alt.add(needed[: -len("_READ")] + "_WRITE")
    elif connector == "shopify" and needed.startswith("read_"):
        alt.add("write_" + needed[len("read_") :])
    elif connector == "woocommerce" and needed in ("read", "write"):
        alt.add("read_write")
    return alt


def missing_scopes(connector: str, granted: Iterable[str], required: Iterable[str]) -> list[str]:
    """The required scopes that `granted` does not cover, in order (empty: the action may run)."""
    have = set(granted)
    return [s for s in required if not (_alternatives(connector, s) & have)]
