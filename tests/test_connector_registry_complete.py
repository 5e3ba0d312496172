"""A registered connector is complete: a sandbox vendor standing in for it (reachable with the settings and the
credential it declares), a seed, an entry in the isolation matrix (tests/test_isolation.py) and a row in
docs/adding-a-connector.md's table -- and none of those exists for a name the registry does not have."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest

from botctl.connectors import registry
from botctl.connectors.urls import normalize_config, sandbox_url_for
from botctl.sandbox import seed
from botctl.sandbox.vendors import all_vendors
from test_isolation import MATRIX

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "adding-a-connector.md"
CONNECTORS = registry.all_connectors()
NAMES = [c.name for c in CONNECTORS]
VENDORS = {v.name: v for v in all_vendors()}


def _documented() -> list[str]:
    text = GUIDE.read_text()
    start = text.index("\n## The connectors")
    end = text.find("\n## ", start + 1)
    return re.findall(r"^\| `([a-z0-9_]+)` \|", text[start : end if end > 0 else None], re.M)


@pytest.fixture(scope="module")
def plan():
    return seed.plan(all_vendors())


@pytest.mark.parametrize("connector", CONNECTORS, ids=NAMES)
def test_a_sandbox_vendor_stands_in_for_it(connector):
    vendor = VENDORS.get(connector.name)
    assert vendor is not None, (
        f"add src/botctl/sandbox/vendors/{connector.name}.py and list it in all_vendors()"
    )
    assert vendor.static_credentials(), "the sandbox accepts no credential for it"
    # The settings the vendor declares satisfy the connector and lead to the vendor's seeded tenant.
    normalize_config(connector, vendor.connect_config)
    url = sandbox_url_for(connector, vendor.connect_config, "http://sandbox")
    assert (url + "/").startswith("http://sandbox" + vendor.prefix(seed.TENANT) + "/"), url
    # The credential a connection stores is the kind the connector takes.
    block = vendor.describe_credentials()
    credential = vendor.connect_credential(block)
    wanted = set(connector.key_fields) if connector.auth == "api_key" else {"access_token"}
    assert credential and set(credential) == wanted, credential
    static = {c.token for c in vendor.static_credentials()}
    assert next(iter(credential.values())) in static
    if connector.auth == "oauth":
        assert vendor.oauth_profile is not None, "an OAuth connector needs the vendor's authorization server"


@pytest.mark.parametrize("connector", CONNECTORS, ids=NAMES)
def test_it_has_a_seed(connector, plan):
    assert set(plan.get(connector.name, {})) == {c.email for c in seed.CUSTOMERS}, "seed_plan missing"
    assert connector.name in plan["_meta"]["accounts"]


@pytest.mark.parametrize("connector", CONNECTORS, ids=NAMES)
def test_it_is_in_the_isolation_matrix(connector, plan):
    assert connector.name in MATRIX, "add its entry to MATRIX in tests/test_isolation.py"
    entry = MATRIX[connector.name]
    grace = plan[connector.name]["grace@example.com"]
    for name, params in entry.get("by_id", {}).items():
        action = connector.action(name)
        assert action is not None and action.customer_specific, name
        jsonschema.validate(params(grace), dict(action.params))  # Grace's object, asked for properly
    for name in entry.get("lists", ()):
        action = connector.action(name)
        assert action is not None and action.customer_specific, name
    assert entry.get("by_id") or entry.get("lists") or entry.get("why"), (
        "an entry with neither by_id nor lists says why (its `why`)"
    )


@pytest.mark.parametrize("connector", CONNECTORS, ids=NAMES)
def test_it_is_documented(connector):
    assert connector.name in _documented(), f"add a row for {connector.name} to {GUIDE.name}'s table"


def test_nothing_stands_for_a_connector_that_is_not_registered():
    assert list(VENDORS) == NAMES  # and in the same order
    assert sorted(MATRIX) == sorted(NAMES)
    assert sorted(_documented()) == sorted(NAMES)
