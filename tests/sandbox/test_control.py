"""The /_sandbox control plane: credentials, seed, stats, config, tokens, reset."""

from __future__ import annotations

import httpx

from botctl.sandbox import seed as seed_module
from botctl.sandbox.app import create_app
from botctl.sandbox.vendors import all_vendors

VENDORS = ("calendly", "calcom", "zendesk", "freshdesk", "hubspot", "stripe", "shopify", "woocommerce")


def test_index_lists_every_vendor_base_url(sandbox, http):
    body = http.get(sandbox.url + "/").json()
    assert set(body["vendors"]) == set(VENDORS)
    assert body["vendors"]["zendesk"] == sandbox.url + "/zendesk/acme"
    assert body["vendors"]["calcom"] == sandbox.url + "/calcom/v2"


def test_credentials_name_every_vendor_with_absolute_base_urls(sandbox, creds):
    assert creds["tenant"] == "acme"
    for vendor in VENDORS:
        assert creds[vendor]["base_url"] == sandbox.url + creds[vendor]["base_path"]
        assert creds[vendor]["base_url"] == sandbox.vendor_url(vendor)
    assert creds["calcom"]["api_key"].startswith("cal_test_")
    assert creds["stripe"]["api_key"].startswith("rk_test_")
    assert creds["stripe"]["limited"]["api_key"].startswith("rk_test_")
    assert "rak_balance_read" not in creds["stripe"]["limited"]["permissions"]
    assert creds["woocommerce"]["consumer_key"].startswith("ck_")
    assert creds["woocommerce"]["consumer_secret"].startswith("cs_")
    assert creds["shopify"]["access_token"].startswith("shpat_")
    assert creds["hubspot"]["access_token"].startswith("pat-na1-")
    assert "scheduled_events:write" in creds["calendly"]["scopes"]


def test_seed_maps_each_customer_to_stable_ids(sandbox, seed):
    assert seed == seed_module.plan(all_vendors())
    for vendor in VENDORS:
        assert set(seed[vendor]) == {"ada@example.com", "grace@example.com", "linus@example.com"}
    assert seed["zendesk"]["ada@example.com"]["tickets"] == [101, 102, 104, 106, 107]
    assert seed["zendesk"]["grace@example.com"]["tickets"] == [103, 105]
    assert seed["woocommerce"]["linus@example.com"]["orders"] == []
    assert seed["hubspot"]["linus@example.com"]["contact_id"] is None
    assert seed["_meta"]["customers"]["ada@example.com"] == "Ada Lovelace"
    # Ada has more than a small page of everything listed.
    assert len(seed["shopify"]["ada@example.com"]["orders"]) >= 3
    assert len(seed["stripe"]["ada@example.com"]["invoices"]) >= 3


def test_stats_count_requests_per_vendor_and_route_template(sandbox, creds, http):
    zd = creds["zendesk"]
    headers = {"Authorization": "Bearer " + zd["access_token"]}
    for tid in (101, 102):
        assert http.get(f"{zd['base_url']}/api/v2/tickets/{tid}.json", headers=headers).status_code == 200
    http.get(f"{zd['base_url']}/api/v2/nope.json", headers=headers)
    stats = sandbox.stats()
    z = stats["vendors"]["zendesk"]
    assert z["requests"] == 3
    route = z["routes"]["GET /api/v2/tickets/{ticket_id}.json"]
    assert route == {"requests": 2, "faulted": 0, "statuses": {"200": 2}}
    assert z["routes"]["GET (unmatched)"]["statuses"] == {"404": 1}
    assert stats["requests"][-1]["path"] == "/zendesk/acme/api/v2/nope.json"
    assert "token_grants" in stats
    sandbox.reset_stats()
    assert sandbox.stats()["total"] == 0


def test_control_endpoints_are_not_counted(sandbox):
    sandbox.credentials()
    sandbox.seed()
    assert sandbox.stats()["total"] == 0


def test_config_caps_page_sizes_and_rejects_unknown_keys(sandbox, http):
    assert sandbox.configure(max_page_size=2)["max_page_size"] == 2
    bad = http.post(sandbox.url + "/_sandbox/config", json={"nope": 1})
    assert bad.status_code == 400
    bad = http.post(sandbox.url + "/_sandbox/config", json={"max_page_size": 0})
    assert bad.status_code == 400


def test_reset_restores_seed_data_and_drops_issued_tokens(sandbox, creds, http):
    zd = creds["zendesk"]
    headers = {"Authorization": "Bearer " + zd["access_token"]}
    created = http.post(
        f"{zd['base_url']}/api/v2/tickets.json",
        headers=headers,
        json={
            "ticket": {"subject": "x", "comment": {"body": "y"}, "requester": {"email": "ada@example.com"}}
        },
    )
    assert created.status_code == 201
    tid = created.json()["ticket"]["id"]
    token = sandbox.issue_token("zendesk", ["read"])["access_token"]
    sandbox.configure(max_page_size=1)
    sandbox.fault("zendesk", "500", count=5)
    sandbox.reset()
    assert http.get(f"{zd['base_url']}/api/v2/tickets/{tid}.json", headers=headers).status_code == 404
    me = http.get(f"{zd['base_url']}/api/v2/users/me.json", headers={"Authorization": "Bearer " + token})
    assert me.status_code == 401
    assert http.get(sandbox.url + "/_sandbox/config").json()["max_page_size"] is None
    assert http.get(sandbox.url + "/_sandbox/faults").json()["faults"] == []


def test_issued_tokens_are_accepted_expire_and_revoke(sandbox, creds, http):
    url = creds["hubspot"]["base_url"] + "/account-info/v3/details"
    token = sandbox.issue_token("hubspot", ["oauth"], ttl=300, grant_type="authorization_code")
    assert token["expires_in"] in (299, 300)
    assert http.get(url, headers={"Authorization": "Bearer " + token["access_token"]}).status_code == 200
    assert sandbox.revoke_token(token["access_token"]) is True
    assert http.get(url, headers={"Authorization": "Bearer " + token["access_token"]}).status_code == 401
    expired = sandbox.issue_token("hubspot", ["oauth"], ttl=0)["access_token"]
    r = http.get(url, headers={"Authorization": "Bearer " + expired})
    assert r.status_code == 401
    assert r.json()["category"] == "EXPIRED_AUTHENTICATION"
    assert sandbox.stats()["token_grants"] == {"hubspot": {"authorization_code": 1}}


def test_registry_is_reachable_in_process_for_the_oauth_server(sandbox, creds, http):
    record = sandbox.state.tokens.issue_access_token("calendly", ["users:read"], 60)
    r = http.get(
        creds["calendly"]["base_url"] + "/users/me", headers={"Authorization": "Bearer " + record.token}
    )
    assert r.status_code == 200
    sandbox.state.stats.record_grant("calendly", "refresh_token")
    assert sandbox.stats()["token_grants"]["calendly"] == {"refresh_token": 1}


def test_create_app_default_token_ttl_applies_to_issued_tokens():
    app = create_app(token_ttl=120)
    record = app.state.sandbox.tokens.issue_access_token("zendesk", ["read"])
    assert record.expires_at is not None
    assert 119 <= record.expires_at - record.issued_at <= 120
    # Each app has its own state.
    assert create_app().state.sandbox is not app.state.sandbox


def test_unknown_vendor_path_is_a_plain_404(sandbox, http):
    assert http.get(sandbox.url + "/nope/x").status_code == 404
    assert isinstance(http.get(sandbox.url + "/_sandbox/faults").json()["faults"], list)


def test_bad_fault_specs_are_rejected(sandbox, http):
    for spec in (
        {"vendor": "nope", "kind": "429"},
        {"vendor": "zendesk", "kind": "418"},
        {"vendor": "zendesk", "kind": "429", "count": 0},
        {"vendor": "zendesk", "kind": "429", "retry_after": "soon"},
    ):
        assert http.post(sandbox.url + "/_sandbox/faults", json=spec).status_code == 400, spec
    assert isinstance(httpx.get(sandbox.url + "/_sandbox/stats").json()["vendors"], dict)
