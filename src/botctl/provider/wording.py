"""What visitors read about actions: the connectors describe them to operators ("The visitor's
orders"), the widget speaks to the visitor ("Your orders"). One sentence per action that says
"visitor"; tests/test_widget_provider.py holds every such connector action to an entry here, so a new
connector's copy cannot reach visitors unworded.
"""

from __future__ import annotations

from typing import Any

FOR_VISITORS = {
    "calendly.list_my_bookings": "Your scheduled meetings.",
    "calendly.cancel_my_booking": "Cancel one of your meetings.",
    "calcom.book_meeting": "Book a slot (you are the attendee).",
    "calcom.list_my_bookings": "Your bookings.",
    "calcom.cancel_my_booking": "Cancel one of your bookings.",
    "zendesk.create_ticket": "Open a support ticket; someone from the team will answer.",
    "zendesk.list_my_tickets": "Your support tickets and their status.",
    "zendesk.get_my_ticket": "One of your tickets with its conversation.",
    "zendesk.add_comment": "Add a reply to one of your tickets.",
    "freshdesk.create_ticket": "Open a support ticket; someone from the team will answer.",
    "freshdesk.list_my_tickets": "Your support tickets and their status.",
    "freshdesk.get_my_ticket": "One of your tickets with its conversation.",
    "hubspot.get_my_contact": "Your contact details on file (name, phone, company).",
    "hubspot.upsert_my_contact": "Add or update your phone, company or job title.",
    "hubspot.add_note": "Leave a note for the team on your account.",
    "stripe.list_my_invoices": "Your invoices (number, status, amounts, link to pay or download).",
    "stripe.list_my_subscriptions": "Your subscriptions and their renewal dates.",
    "stripe.cancel_my_subscription": "Cancel one of your subscriptions at the end of the current period.",
    "shopify.list_my_orders": "Your orders, newest first, with payment and delivery status.",
    "shopify.get_my_order": "One of your orders with its items and tracking.",
    "woocommerce.list_my_orders": "Your orders with their status and totals.",
    "woocommerce.get_my_order": "One of your orders with its items.",
    "woocommerce.add_order_note": "Send a message to the shop's staff about one of your orders.",
}


def for_visitor(action: dict[str, Any]) -> dict[str, Any]:
    """The catalogue entry with its description in the visitor's words."""
    text = FOR_VISITORS.get(str(action.get("name")))
    return {**action, "description": text} if text else action
