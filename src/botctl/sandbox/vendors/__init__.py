"""One module per vendor; `all_vendors()` lists them in a stable order (the connector registry's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Vendor


def all_vendors() -> list[Vendor]:
    from . import calcom, calendly, freshdesk, hubspot, shopify, stripe, woocommerce, zendesk

    return [
        calendly.VENDOR,
        calcom.VENDOR,
        zendesk.VENDOR,
        freshdesk.VENDOR,
        hubspot.VENDOR,
        stripe.VENDOR,
        shopify.VENDOR,
        woocommerce.VENDOR,
    ]


def get(name: str) -> Vendor:
    """The vendor named `name` (KeyError when there is none)."""
    for vendor in all_vendors():
        if vendor.name == name:
            return vendor
    raise KeyError(name)
