"""Freshdesk's seeded data: agents, contacts, tickets, conversations and the store that holds them."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from botctl.sandbox.state import DAY
from botctl.sandbox.vendors.base import email_eq
from botctl.sandbox.wire import (
    iso,
)

STATUSES = (2, 3, 4, 5)  # open, pending, resolved, closed
PRIORITIES = (1, 2, 3, 4)  # low .. urgent
SOURCES = (1, 2, 3, 5, 6, 7, 9, 10)
MAX_PER_PAGE = 100
SUBJECTS = ("Order arrived damaged", "Invoice question", "Password reset", "Delivery delay", "Cancel my plan")


@dataclass
class FreshdeskStore:
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_contact_id: int = 43000000201
    next_ticket_id: int = 100
    next_conversation_id: int = 43000900001

    def contact_by_email(self, email: str) -> dict[str, Any] | None:
        return next((c for c in self.contacts.values() if email_eq(c["email"], email)), None)


def contact_record(cid: int, name: str, email: str, ts: float) -> dict[str, Any]:
    return {
        "active": True,
        "address": None,
        "company_id": None,
        "description": None,
        "email": email,
        "id": cid,
        "job_title": None,
        "language": "en",
        "mobile": None,
        "name": name,
        "phone": None,
        "time_zone": "London",
        "twitter_id": None,
        "other_emails": [],
        "facebook_id": None,
        "unique_external_id": None,
        "custom_fields": {},
        "tags": [],
        "created_at": iso(ts),
        "updated_at": iso(ts),
    }


def ticket(
    tid: int, subject: str, text: str, requester_id: int, status: int, priority: int, source: int, ts: float
) -> dict[str, Any]:
    return {
        "cc_emails": [],
        "fwd_emails": [],
        "reply_cc_emails": [],
        "ticket_cc_emails": [],
        "fr_escalated": False,
        "spam": False,
        "email_config_id": None,
        "group_id": None,
        "priority": priority,
        "requester_id": requester_id,
        "responder_id": None,
        "source": source,
        "company_id": None,
        "status": status,
        "subject": subject,
        "association_type": None,
        "support_email": None,
        "to_emails": None,
        "product_id": None,
        "id": tid,
        "type": None,
        "due_by": iso(ts + 3 * DAY),
        "fr_due_by": iso(ts + DAY),
        "is_escalated": False,
        "description": f"<div>{html.escape(text)}</div>",
        "description_text": text,
        "custom_fields": {},
        "created_at": iso(ts),
        "updated_at": iso(ts),
        "tags": [],
        "attachments": [],
        "nr_due_by": None,
        "nr_escalated": False,
    }


# Sandbox-only credential: it opens nothing but this local fake.
API_KEY = "fdSandboxAcmeKey0123"
