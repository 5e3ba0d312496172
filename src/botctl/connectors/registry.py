"""The connectors by name, in listing order. Importing this module imports no HTTP library.

Adding a connector: its module and one line here (docs/adding-a-connector.md)."""

from __future__ import annotations

from typing import Any

from botctl.connectors import calcom, calendly, freshdesk, hubspot, shopify, stripe, woocommerce, zendesk
from botctl.connectors.base import Action, Connector

_CONNECTORS: tuple[Connector, ...] = (
    calendly.CONNECTOR,
    calcom.CONNECTOR,
    zendesk.CONNECTOR,
    freshdesk.CONNECTOR,
    hubspot.CONNECTOR,
    stripe.CONNECTOR,
    shopify.CONNECTOR,
    woocommerce.CONNECTOR,
)
_BY_NAME = {c.name: c for c in _CONNECTORS}


def all_connectors() -> list[Connector]:
    return list(_CONNECTORS)


def get(name: str) -> Connector | None:
    return _BY_NAME.get(name)


def oauth_clients() -> dict[str, Any]:
    """Connector name -> the OAuth authorization-server defaults it declares (`Connector.oauth_client`)."""
    return {c.name: c.oauth_client for c in _CONNECTORS if c.oauth_client is not None}


def find_action(full_name: str) -> tuple[Connector, Action] | None:
    """`"zendesk.create_ticket"` → (zendesk connector, its create_ticket action), or None."""
    connector_name, _, action_name = full_name.partition(".")
    connector = _BY_NAME.get(connector_name)
    if connector is None or not action_name:
        return None
    action = connector.action(action_name)
    return None if action is None else (connector, action)
