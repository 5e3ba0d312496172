"""The registry, the action schemas, identity binding and the connection-config checks."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
import pytest

from botctl.connectors import registry
from botctl.connectors.base import ActionError, Visitor
from botctl.connectors.urls import base_url_for, normalize_config, sandbox_url_for

NAMES = ["calendly", "calcom", "zendesk", "freshdesk", "hubspot", "stripe", "shopify", "woocommerce"]
ALL_ACTIONS = [(c.name, a) for c in registry.all_connectors() for a in c.actions]
IDENTITY_WORDS = ("email", "name")


def test_registry_lists_the_eight():
    assert [c.name for c in registry.all_connectors()] == NAMES
    assert registry.get("zendesk").category == "support"
    assert registry.get("nope") is None


def test_find_action():
    connector, action = registry.find_action("zendesk.create_ticket")
    assert (connector.name, action.name) == ("zendesk", "create_ticket")
    assert registry.find_action("zendesk.nope") is None
    assert registry.find_action("zendesk") is None
    assert registry.find_action("nope.create_ticket") is None


def test_expected_actions():
    expected = {
        "calendly": {"available_times", "list_my_bookings", "cancel_my_booking"},
        "calcom": {"available_slots", "book_meeting", "list_my_bookings", "cancel_my_booking"},
        "zendesk": {"create_ticket", "list_my_tickets", "get_my_ticket", "add_comment"},
        "freshdesk": {"create_ticket", "list_my_tickets", "get_my_ticket"},
        "hubspot": {"get_my_contact", "upsert_my_contact", "add_note"},
        "stripe": {"list_my_invoices", "list_my_subscriptions", "cancel_my_subscription"},
        "shopify": {"list_my_orders", "get_my_order"},
        "woocommerce": {"list_my_orders", "get_my_order", "add_order_note"},
    }
    assert {c.name: {a.name for a in c.actions} for c in registry.all_connectors()} == expected
    not_customer = {("calendly", "available_times"), ("calcom", "available_slots")}
    for name, action in ALL_ACTIONS:
        assert action.customer_specific == ((name, action.name) not in not_customer), (name, action.name)


def test_auth_and_categories():
    got = {c.name: (c.category, c.auth, c.auth_style) for c in registry.all_connectors()}
    assert got == {
        "calendly": ("scheduling", "oauth", "bearer"),
        "calcom": ("scheduling", "api_key", "bearer"),
        "zendesk": ("support", "oauth", "bearer"),
        "freshdesk": ("support", "api_key", "basic_key_x"),
        "hubspot": ("crm", "oauth", "bearer"),
        "stripe": ("payments", "api_key", "bearer"),
        "shopify": ("ecommerce", "oauth", "shopify_header"),
        "woocommerce": ("ecommerce", "api_key", "basic_key_secret"),
    }


@pytest.mark.parametrize(("name", "action"), ALL_ACTIONS, ids=[f"{n}.{a.name}" for n, a in ALL_ACTIONS])
def test_action_schema_is_valid_and_closed(name, action):
    schema = dict(action.params)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert action.description and action.scopes
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid({"surprise": 1})
    if action.customer_specific:
        # Identity comes from the verified token, never from parameters.
        for prop in schema.get("properties", {}):
            assert not any(word in prop.lower() for word in IDENTITY_WORDS), f"{name}.{action.name}: {prop}"


def test_action_scopes_are_requested_by_default():
    for c in registry.all_connectors():
        for a in c.actions:
            assert set(a.scopes) <= set(c.scopes), (c.name, a.name, a.scopes)


def test_registry_import_is_cheap():
    code = "import sys, botctl.connectors.registry; print(sorted(m for m in ('httpx','jsonschema','rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_base_urls():
    get = registry.get
    assert base_url_for(get("zendesk"), {"subdomain": "acme"}) == "https://acme.zendesk.com"
    assert (
        base_url_for(get("zendesk"), {"subdomain": "https://Acme.zendesk.com/"}) == "https://acme.zendesk.com"
    )
    assert base_url_for(get("freshdesk"), {"domain": "acme"}) == "https://acme.freshdesk.com"
    assert base_url_for(get("shopify"), {"shop": "acme.myshopify.com"}) == "https://acme.myshopify.com"
    assert (
        base_url_for(get("woocommerce"), {"site": "https://shop.example/store/"})
        == "https://shop.example/store"
    )
    assert base_url_for(get("calcom"), {}) == "https://api.cal.com"
    assert base_url_for(get("calcom"), {"base_url": "https://cal.example.org"}) == "https://cal.example.org"
    assert base_url_for(get("stripe"), {}) == "https://api.stripe.com"


def test_sandbox_urls():
    s = "http://127.0.0.1:9"
    get = registry.get
    assert sandbox_url_for(get("zendesk"), {"subdomain": "acme"}, s) == s + "/zendesk/acme"
    assert sandbox_url_for(get("woocommerce"), {"site": "https://acme.example"}, s) == s + "/woocommerce/acme"
    assert sandbox_url_for(get("calcom"), {}, s) == s + "/calcom"
    assert sandbox_url_for(get("hubspot"), {}, s) == s + "/hubspot"


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("zendesk", {"subdomain": "evil.example/x#"}),
        ("zendesk", {"subdomain": "a@evil.example"}),
        ("zendesk", {}),
        ("freshdesk", {"domain": "acme.evil.example"}),
        ("shopify", {"shop": "acme.myshopify.com.evil.example"}),
        ("woocommerce", {"site": "ftp://shop.example"}),
        ("woocommerce", {"site": "https://user:pw@shop.example"}),
        ("woocommerce", {"site": "https://shop.example/?x=1"}),
        ("woocommerce", {"site": "shop.example"}),
    ],
)
def test_config_values_cannot_redirect_the_credential(name, config):
    with pytest.raises(ActionError) as e:
        normalize_config(registry.get(name), config)
    assert e.value.code == "invalid_params"


CUSTOMER_ACTIONS = [(c.name, a) for c in registry.all_connectors() for a in c.actions if a.customer_specific]


@pytest.mark.parametrize(
    ("name", "action"), CUSTOMER_ACTIONS, ids=[f"{n}.{a.name}" for n, a in CUSTOMER_ACTIONS]
)
def test_customer_actions_need_a_visitor_before_any_vendor_call(h, name, action):
    """No verified visitor (or one without an email): identity_required, and the vendor saw nothing."""
    params = {
        "booking_id": "ADAEVENT00000001",
        "ticket_id": 101,
        "subscription_id": "sub_AdaSub0000001",
        "order_id": 101,
        "subject": "s",
        "description": "d",
        "body": "b",
        "note": "n",
        "event_type_id": 301,
        "start": "2030-01-01T10:00:00Z",
    }
    props = action.params.get("properties", {})
    args = {k: (str(v) if props[k].get("type") == "string" else v) for k, v in params.items() if k in props}
    for visitor in (None, Visitor(sub="no-email")):
        err = h.fail(f"{name}.{action.name}", args, visitor=visitor)
        assert err.code == "identity_required"
    assert h.sb.stats()["total"] == 0


@pytest.mark.parametrize(
    ("name", "granted", "required", "missing"),
    [
        ("zendesk", ["read", "write"], ["tickets:read", "tickets:write", "users:read"], []),
        ("zendesk", ["read"], ["tickets:read", "tickets:write"], ["tickets:write"]),
        ("zendesk", ["tickets:read"], ["tickets:read", "users:read"], ["users:read"]),
        ("calendly", ["scheduled_events:write"], ["scheduled_events:read"], []),
        ("calendly", ["event_types:read"], ["availability:read"], []),
        ("hubspot", ["oauth", "crm.objects.contacts.write"], ["crm.objects.contacts.read"], []),
        (
            "stripe",
            ["rak_customer_write", "rak_subscription_write"],
            ["rak_customer_read", "rak_subscription_read"],
            [],
        ),
        ("stripe", ["rak_customer_read"], ["rak_customer_read", "rak_invoice_read"], ["rak_invoice_read"]),
        ("shopify", ["write_orders"], ["read_orders"], []),
        ("woocommerce", ["read_write"], ["read", "write"], []),
        ("woocommerce", ["read"], ["read", "write"], ["write"]),
        ("calcom", ["*"], ["BOOKING_WRITE"], []),
    ],
)
def test_missing_scopes(name, granted, required, missing):
    from botctl.connectors.scopes import missing_scopes

    assert missing_scopes(registry.get(name), granted, required) == missing


def test_sandbox_full_credentials_cover_every_action(h):
    """The scopes the sandbox grants its full credentials cover each action's scopes."""
    from botctl.connectors.scopes import missing_scopes

    for c in registry.all_connectors():
        creds = h.creds[c.name]
        granted = creds.get("scopes") or creds.get("permissions") or ["*"]
        if isinstance(granted, str):  # WooCommerce: "read_write"
            granted = [granted]
        for a in c.actions:
            assert missing_scopes(c, granted, a.scopes) == [], (c.name, a.name)
