"""OAuth after the first token: refresh rotation and reuse detection, revocation (RFC 7009 and the
vendors' own endpoints), the device flow (RFC 8628), and a token endpoint that fails after rotating."""

from __future__ import annotations

import httpx
import pytest

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# --- refresh rotation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["calendly", "zendesk", "hubspot"])
def test_refresh_rotates_and_reuse_revokes_the_family(sandbox, oauth, vendor):
    first = oauth.tokens(vendor)
    second = oauth.refresh(vendor, first["refresh_token"]).json()
    assert (
        second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    )
    assert oauth.api(vendor, second["access_token"]).status_code == 200
    # Zendesk deletes the previous access token on refresh; the others let it run out.
    assert oauth.api(vendor, first["access_token"]).status_code == (401 if vendor == "zendesk" else 200)

    reuse = oauth.refresh(vendor, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone: the current refresh token and every access token.
    assert oauth.refresh(vendor, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth.api(vendor, second["access_token"]).status_code == 401
    assert oauth.api(vendor, first["access_token"]).status_code == 401
    stats = sandbox.stats()
    assert stats["token_grants"][vendor] == {"authorization_code": 1, "refresh_token": 1}
    assert stats["token_grant_errors"][vendor] == {"invalid_grant": 2}
    assert stats["oauth_events"][vendor] == {"refresh_token_reuse": 1}


def test_a_family_revoked_elsewhere_leaves_other_grants_alone(oauth):
    a, b = oauth.tokens("calendly"), oauth.tokens("calendly")
    a2 = oauth.refresh("calendly", a["refresh_token"]).json()
    oauth.refresh("calendly", a["refresh_token"])  # reuse: family a revoked
    assert oauth.api("calendly", a2["access_token"]).status_code == 401
    assert oauth.api("calendly", b["access_token"]).status_code == 200
    assert oauth.refresh("calendly", b["refresh_token"]).status_code == 200


def test_shopify_keeps_the_old_refresh_token_until_the_new_one_is_used(sandbox, oauth):
    a = oauth.tokens("shopify")
    b = oauth.refresh("shopify", a["refresh_token"]).json()
    # The answer was "lost": retrying with the old token works (Shopify, since 2026-08-28)...
    c = oauth.refresh("shopify", a["refresh_token"])
    assert c.status_code == 200, c.text
    c = c.json()
    assert oauth.refresh("shopify", b["refresh_token"]).json()["error"] == "invalid_grant"  # superseded
    d = oauth.refresh("shopify", c["refresh_token"]).json()
    # ...until its replacement has been used: then the old one is a reuse.
    assert oauth.refresh("shopify", a["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth.api("shopify", d["access_token"]).status_code == 401
    assert sandbox.stats()["oauth_events"]["shopify"] == {"refresh_token_reuse": 1}


def test_refresh_may_narrow_but_not_widen_the_scope(oauth):
    tok = oauth.tokens("hubspot", scope="oauth tickets")
    narrow = oauth.token_request(
        "hubspot", {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "scope": "oauth"}
    )
    assert narrow.json()["scope"] == "oauth"
    wide = oauth.token_request(
        "hubspot",
        {
            "grant_type": "refresh_token",
            "refresh_token": narrow.json()["refresh_token"],
            "scope": "oauth crm.objects.contacts.read",
        },
    )
    assert wide.status_code == 400 and wide.json()["error"] == "invalid_scope"


def test_refresh_token_belongs_to_its_client(oauth):
    tok = oauth.tokens("zendesk")
    r = oauth.refresh("zendesk", tok["refresh_token"], public=True)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# --- a token endpoint that fails after rotating -------------------------------------------------------------


def test_rotate_then_fail_loses_the_new_refresh_token(sandbox, oauth):
    tok = oauth.tokens("calendly")
    sandbox.fault("calendly", "rotate_then_fail", path="/oauth/token")
    r = oauth.refresh("calendly", tok["refresh_token"])
    assert r.status_code == 500 and r.json()["title"] == "Internal Server Error"
    stats = sandbox.stats()
    assert stats["token_grants"]["calendly"]["refresh_token"] == 1  # it did happen
    assert stats["vendors"]["calendly"]["faulted"] == 1
    # The old token was rotated away: retrying it is a reuse, and the grant is gone.
    assert oauth.refresh("calendly", tok["refresh_token"]).json()["error"] == "invalid_grant"


def test_rotate_then_fail_on_shopify_is_recoverable(sandbox, oauth):
    tok = oauth.tokens("shopify")
    sandbox.fault("shopify", "rotate_then_fail", path="/admin/oauth/access_token")
    lost = oauth.refresh("shopify", tok["refresh_token"])
    assert lost.status_code == 500 and lost.json() == {"errors": "Internal Server Error"}
    retry = oauth.refresh("shopify", tok["refresh_token"])
    assert retry.status_code == 200 and oauth.api("shopify", retry.json()["access_token"]).status_code == 200


def test_token_endpoint_write_then_reset(sandbox, oauth):
    tok = oauth.tokens("hubspot")
    sandbox.fault("hubspot", "write_then_reset", path="/oauth/v3/token")
    with pytest.raises(httpx.TransportError):
        oauth.refresh("hubspot", tok["refresh_token"])
    assert sandbox.stats()["token_grants"]["hubspot"]["refresh_token"] == 1
    assert oauth.refresh("hubspot", tok["refresh_token"]).json()["error"] == "invalid_grant"


# --- RFC 7009 ---------------------------------------------------------------------------------------------


def revoke(oauth, vendor, token, hint=None, *, public=False, creds=None):
    c = oauth.conf(vendor)
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    auth = None
    if public:
        data["client_id"] = c["public_client_id"]
    elif creds == "basic" or (creds is None and c["token_endpoint_auth_method"] == "client_secret_basic"):
        auth = (c["client_id"], c["client_secret"])
    else:
        data.update(client_id=c["client_id"], client_secret=c["client_secret"])
    return oauth.http.post(c["revoke_url"], data=data, auth=auth)


@pytest.mark.parametrize("vendor", ["calendly", "zendesk", "hubspot", "shopify"])
def test_revoking_a_refresh_token_revokes_its_grant(sandbox, oauth, vendor):
    a = oauth.tokens(vendor)
    b = oauth.refresh(vendor, a["refresh_token"]).json()
    other = oauth.tokens(vendor)
    r = revoke(oauth, vendor, b["refresh_token"], "refresh_token")
    assert r.status_code == 200 and r.json() == {}
    assert oauth.api(vendor, b["access_token"]).status_code == 401
    assert oauth.refresh(vendor, b["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth.api(vendor, other["access_token"]).status_code == 200
    assert sandbox.stats()["oauth_events"][vendor]["revocation"] == 1


@pytest.mark.parametrize("vendor", ["calendly", "hubspot"])
def test_revoking_an_access_token_leaves_the_refresh_token(oauth, vendor):
    tok = oauth.tokens(vendor)
    assert revoke(oauth, vendor, tok["access_token"], "access_token").status_code == 200
    assert oauth.api(vendor, tok["access_token"]).status_code == 401
    assert oauth.refresh(vendor, tok["refresh_token"]).status_code == 200


def test_revocation_edge_cases(sandbox, oauth, creds):
    # Unknown tokens and unknown hints: 200 (RFC 7009 §2.2).
    assert revoke(oauth, "calendly", "never-issued").status_code == 200
    tok = oauth.tokens("calendly")
    assert revoke(oauth, "calendly", tok["refresh_token"], "bogus_hint").status_code == 200
    assert oauth.refresh("calendly", tok["refresh_token"]).json()["error"] == "invalid_grant"
    # Calendly's revoke also takes the credentials in the body.
    tok = oauth.tokens("calendly")
    assert revoke(oauth, "calendly", tok["access_token"], creds="post").status_code == 200
    # A static PAT is not this client's to revoke: 200, and it keeps working.
    pat = creds["calendly"]["access_token"]
    assert revoke(oauth, "calendly", pat).status_code == 200
    assert oauth.api("calendly", pat).status_code == 200
    # Missing token, bad client credentials.
    c = oauth.conf("calendly")
    r = oauth.http.post(c["revoke_url"], data={}, auth=(c["client_id"], c["client_secret"]))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = oauth.http.post(c["revoke_url"], data={"token": "x"}, auth=(c["client_id"], "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # Another client's token.
    tok = oauth.tokens("calendly")
    assert revoke(oauth, "calendly", tok["refresh_token"], public=True).json()["error"] == "invalid_grant"


def test_public_client_revokes_with_client_id_only(oauth):
    conf = oauth.conf("zendesk")
    code, verifier, _ = oauth.code("zendesk", client_id=conf["public_client_id"])
    tok = oauth.exchange("zendesk", code, verifier, public=True).json()
    assert revoke(oauth, "zendesk", tok["refresh_token"], public=True).status_code == 200
    assert oauth.api("zendesk", tok["access_token"]).status_code == 401


def test_zendesk_token_endpoints(sandbox, oauth):
    base = sandbox.vendor_url("zendesk")
    tok = oauth.tokens("zendesk", scope="read")
    auth = {"Authorization": f"Bearer {tok['access_token']}"}
    current = oauth.http.get(base + "/api/v2/oauth/tokens/current.json", headers=auth).json()["token"]
    assert current["scopes"] == ["read"] and current["token"] == tok["access_token"][:10]
    assert current["url"].endswith(f"/api/v2/oauth/tokens/{current['id']}.json")
    other = oauth.tokens("zendesk")
    other_auth = {"Authorization": f"Bearer {other['access_token']}"}
    r = oauth.http.delete(base + f"/api/v2/oauth/tokens/{current['id']}.json", headers=other_auth)
    assert r.status_code == 204
    assert oauth.api("zendesk", tok["access_token"]).status_code == 401
    assert oauth.refresh("zendesk", tok["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth.http.delete(base + "/api/v2/oauth/tokens/1.json", headers=other_auth).status_code == 404
    assert (
        oauth.http.delete(base + "/api/v2/oauth/tokens/current.json", headers=other_auth).status_code == 204
    )
    assert oauth.api("zendesk", other["access_token"]).status_code == 401


def test_shopify_uninstall_revokes_every_token_of_the_app(sandbox, oauth, creds):
    a, b = oauth.tokens("shopify"), oauth.tokens("shopify")
    url = oauth.conf("shopify")["uninstall_url"]
    r = oauth.http.delete(url, headers={"X-Shopify-Access-Token": a["access_token"]})
    assert r.status_code == 200 and r.json() == {}
    for tok in (a, b):
        assert oauth.api("shopify", tok["access_token"]).status_code == 401
        assert oauth.refresh("shopify", tok["refresh_token"]).json()["error"] == "invalid_grant"
    assert oauth.api("shopify", creds["shopify"]["access_token"]).status_code == 200  # another app
    assert oauth.http.delete(url, headers={"X-Shopify-Access-Token": a["access_token"]}).status_code == 401


def test_hubspot_v1_refresh_token_endpoints(oauth):
    tok = oauth.tokens("hubspot")
    url = oauth.conf("hubspot")["refresh_token_url_v1"].format(refresh_token=tok["refresh_token"])
    info = oauth.http.get(url).json()
    assert info["token_type"] == "refresh" and info["scopes"] == oauth.conf("hubspot")["scopes"]
    assert oauth.http.delete(url).status_code == 204
    assert oauth.http.get(url).status_code == 404
    assert oauth.refresh("hubspot", tok["refresh_token"]).json()["error"] == "invalid_grant"
    # v1 deletes only the refresh token: the access token lives until it expires.
    assert oauth.api("hubspot", tok["access_token"]).status_code == 200


# --- RFC 8628 device flow ---------------------------------------------------------------------------------


def start_device(oauth, vendor, *, public=False, scope=None):
    c = oauth.conf(vendor)
    data = {"scope": scope or " ".join(c["scopes"][:2])}
    auth = None
    if public:
        data["client_id"] = c["public_client_id"]
    elif c["token_endpoint_auth_method"] == "client_secret_basic":
        auth = (c["client_id"], c["client_secret"])
    else:
        data.update(client_id=c["client_id"], client_secret=c["client_secret"])
    r = oauth.http.post(c["device_url"], data=data, auth=auth)
    assert r.status_code == 200, r.text
    return r.json()


def poll(oauth, vendor, device_code, *, public=False):
    return oauth.token_request(
        vendor, {"grant_type": DEVICE_GRANT, "device_code": device_code}, public=public
    )


@pytest.mark.parametrize("vendor", ["zendesk", "hubspot"])
def test_device_flow_pending_slow_down_approve(sandbox, oauth, vendor):
    conf = oauth.conf(vendor)
    d = start_device(oauth, vendor)
    assert d["verification_uri"] == conf["device_verification_url"]
    assert d["verification_uri_complete"] == d["verification_uri"] + "?user_code=" + d["user_code"]
    assert d["expires_in"] == 600 and d["interval"] == 5
    assert poll(oauth, vendor, d["device_code"]).json()["error"] == "authorization_pending"
    # Polled again at once: slow_down, and the interval grows by 5 s for good.
    assert poll(oauth, vendor, d["device_code"]).json()["error"] == "slow_down"
    credential = sandbox.state.oauth.stores[vendor].devices[d["device_code"]]
    assert credential.interval == 10
    credential.polls[-1] -= 6  # 6 s later: still too soon for the new 10 s interval
    assert poll(oauth, vendor, d["device_code"]).json()["error"] == "slow_down"
    credential.polls[-1] -= 16
    assert poll(oauth, vendor, d["device_code"]).json()["error"] == "authorization_pending"

    assert sandbox.approve_device(d["user_code"].lower()) == {"vendor": vendor, "status": "approved"}
    tok = poll(oauth, vendor, d["device_code"])
    assert tok.status_code == 200, tok.text
    tok = tok.json()
    assert tok["scope"] == " ".join(conf["scopes"][:2]) and tok["refresh_token"]
    assert oauth.api(vendor, tok["access_token"]).status_code == 200
    assert oauth.refresh(vendor, tok["refresh_token"]).status_code == 200
    # Device codes are single-use.
    assert poll(oauth, vendor, d["device_code"]).json()["error"] == "invalid_grant"
    stats = sandbox.stats()
    assert stats["token_grants"][vendor] == {"device_code": 1, "refresh_token": 1}
    assert stats["token_grant_errors"][vendor] == {
        "authorization_pending": 2,
        "slow_down": 2,
        "invalid_grant": 1,
    }


def test_device_flow_denied_expired_and_wrong_client(sandbox, oauth):
    d = start_device(oauth, "zendesk")
    sandbox.approve_device(d["user_code"], deny=True)
    assert poll(oauth, "zendesk", d["device_code"]).json()["error"] == "access_denied"
    r = oauth.http.post(sandbox.url + "/_sandbox/device/approve", json={"user_code": d["user_code"]})
    assert r.status_code == 409 and r.json()["error"] == "already_decided"
    # Another client may not redeem it.
    assert poll(oauth, "zendesk", d["device_code"], public=True).json()["error"] == "unauthorized_client"

    sandbox.configure(device_code_ttl=0)
    d = start_device(oauth, "zendesk")
    assert d["expires_in"] == 0
    assert poll(oauth, "zendesk", d["device_code"]).json()["error"] == "expired_token"
    r = oauth.http.post(sandbox.url + "/_sandbox/device/approve", json={"user_code": d["user_code"]})
    assert r.status_code == 409 and r.json()["error"] == "expired_token"
    assert (
        oauth.http.post(sandbox.url + "/_sandbox/device/approve", json={"user_code": "NOPE"}).status_code
        == 404
    )
    assert poll(oauth, "zendesk", "no-such-code").json()["error"] == "invalid_request"


def test_device_verification_page(sandbox, oauth):
    from botctl.sandbox.testing import parse_form

    d = start_device(oauth, "hubspot", scope="oauth")
    page = oauth.http.get(d["verification_uri_complete"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    form = parse_form(page.text)
    assert form.fields["user_code"] == d["user_code"]
    wrong = oauth.http.post(
        str(page.url.join(form.action)), data={"user_code": "BBBB-CCCC", "decision": "approve"}
    )
    assert wrong.status_code == 400 and "not valid" in wrong.text
    done = oauth.http.post(str(page.url.join(form.action)), data={**form.fields, "decision": "approve"})
    assert done.status_code == 200 and "Device connected" in done.text
    assert poll(oauth, "hubspot", d["device_code"]).status_code == 200


def test_device_flow_for_a_public_client(oauth):
    d = start_device(oauth, "zendesk", public=True)
    oauth.sandbox.approve_device(d["user_code"])
    r = poll(oauth, "zendesk", d["device_code"], public=True)
    assert r.status_code == 200 and oauth.api("zendesk", r.json()["access_token"]).status_code == 200


def test_device_flow_is_off_where_the_vendor_has_none(sandbox, oauth):
    conf = oauth.conf("calendly")
    assert "device_url" not in conf
    base = sandbox.vendor_url("calendly")
    r = oauth.http.post(base + "/oauth/device_authorization", data={"client_id": conf["client_id"]})
    assert r.status_code == 404 and r.json()["title"] == "Resource Not Found"
    r = oauth.token_request("calendly", {"grant_type": DEVICE_GRANT, "device_code": "x"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    # It is a sandbox switch: on for Calendly, off for Zendesk.
    sandbox.configure(device_flow=["calendly"])
    assert "device_url" in sandbox.oauth("calendly") and "device_url" not in sandbox.oauth("zendesk")
    oauth._conf.clear()
    d = start_device(oauth, "calendly", scope="users:read")
    sandbox.approve_device(d["user_code"])
    assert poll(oauth, "calendly", d["device_code"]).status_code == 200
    zendesk = sandbox.vendor_url("zendesk") + "/oauth/device_authorization"
    assert oauth.http.post(zendesk, data={}).status_code == 404


def test_device_authorization_validates_client_and_scope(oauth):
    c = oauth.conf("zendesk")
    r = oauth.http.post(
        c["device_url"], data={"client_id": c["client_id"], "client_secret": "x", "scope": "read"}
    )
    assert r.json()["error"] == "invalid_client"
    r = oauth.http.post(
        c["device_url"],
        data={"client_id": c["client_id"], "client_secret": c["client_secret"], "scope": "everything"},
    )
    assert r.json()["error"] == "invalid_scope"
    r = oauth.http.post(
        c["device_url"], data={"client_id": c["client_id"], "client_secret": c["client_secret"]}
    )
    assert r.json()["error"] == "invalid_scope"
