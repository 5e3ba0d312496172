"""The sandbox's OAuth 2.0 authorization servers (Calendly, Zendesk, HubSpot, Shopify): the
authorization-code + PKCE flow end to end over real HTTP, consent, redirect matching, PKCE rules,
client authentication, and that issued tokens work on the vendor APIs."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from botctl.sandbox.testing import parse_form, running_sandbox

VENDORS = ("calendly", "zendesk", "hubspot", "shopify")
# A scope that does not cover the request OAuthHelper.api() makes (Shopify: just fewer scopes).
NARROW = {
    "calendly": "scheduled_events:read",
    "zendesk": "tickets:read",
    "hubspot": "oauth",
    "shopify": "read_orders",
}
EXPIRED_401 = {
    "calendly": lambda b: b == {"title": "Unauthenticated", "message": "The access token expired"},
    "zendesk": lambda b: b["error"] == "invalid_token",
    "hubspot": lambda b: b["category"] == "EXPIRED_AUTHENTICATION",
    "shopify": lambda b: "Invalid API key or access token" in b["errors"],
}


def callback(r) -> dict[str, list[str]]:
    assert r.status_code == 302, r.text
    return parse_qs(urlsplit(r.headers["location"]).query)


@pytest.mark.parametrize("vendor", VENDORS)
def test_authorization_code_flow_with_pkce_consent_and_api_access(sandbox, oauth, vendor):
    conf = oauth.conf(vendor)
    verifier, challenge = oauth.pkce()
    params = oauth.auth_params(vendor, code_challenge=challenge, code_challenge_method="S256")

    # The consent page: plain HTML, no external assets, names the client and every scope.
    page = oauth.http.get(conf["authorize_url"], params=params)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert not re.search(r"<(script|link|img)\b|src=|https?://(?!127\.0\.0\.1)", page.text)
    assert conf["client_id"] in page.text
    for scope in conf["scopes"]:
        assert f"<code>{scope}</code>" in page.text
    form = parse_form(page.text)
    assert form.method == "post" and sorted(form.buttons) == [("decision", "approve"), ("decision", "deny")]

    r = oauth.http.post(str(page.url.join(form.action)), data={**form.fields, "decision": "approve"})
    q = callback(r)
    assert r.headers["location"].startswith(oauth.REDIRECT + "?")
    assert q["state"] == [f"st-{vendor}"]
    assert q["iss"] == [conf["issuer"]]  # RFC 9207
    # The consent is single-use.
    again = oauth.http.post(str(page.url.join(form.action)), data={**form.fields, "decision": "approve"})
    assert again.status_code == 400 and "location" not in again.headers

    token_r = oauth.exchange(vendor, q["code"][0], verifier)
    assert token_r.status_code == 200, token_r.text
    assert token_r.headers["cache-control"] == "no-store"
    tok = token_r.json()
    assert tok["scope"] == conf["scope_separator"].join(conf["scopes"])
    assert tok["expires_in"] == conf["access_token_ttl"]
    assert tok["refresh_token"] and tok["access_token"]
    expected_type = {"calendly": "Bearer", "zendesk": "bearer", "hubspot": "bearer", "shopify": None}[vendor]
    assert tok.get("token_type") == expected_type
    if vendor == "calendly":
        assert tok["owner"].endswith("/calendly/users/ACMEUSER00000001")
        assert tok["organization"].endswith("/calendly/organizations/ACMEORG000000001")
        assert isinstance(tok["created_at"], int)
    if vendor in ("zendesk", "shopify"):
        assert tok["refresh_token_expires_in"] == conf["refresh_token_ttl"]
    if vendor == "shopify":
        assert re.fullmatch(r"shpat_[0-9a-f]{32}", tok["access_token"])

    api = oauth.api(vendor, tok["access_token"])
    assert api.status_code == 200, api.text
    if vendor == "shopify":
        assert sorted(h["handle"] for h in api.json()["access_scopes"]) == sorted(conf["scopes"])
    assert sandbox.stats()["token_grants"][vendor] == {"authorization_code": 1}


@pytest.mark.parametrize("vendor", VENDORS)
def test_granted_scopes_bound_the_token(oauth, vendor):
    tok = oauth.tokens(vendor, scope=NARROW[vendor])
    assert tok["scope"] == NARROW[vendor]
    r = oauth.api(vendor, tok["access_token"])
    if vendor == "shopify":
        assert [h["handle"] for h in r.json()["access_scopes"]] == ["read_orders"]
    else:
        assert r.status_code == 403, r.text


@pytest.mark.parametrize("vendor", VENDORS)
def test_deny_redirects_with_access_denied_state_and_iss(oauth, vendor):
    q = callback(oauth.authorize(vendor, decision="deny"))
    assert q["error"] == ["access_denied"]
    assert q["state"] == [f"st-{vendor}"]
    assert q["iss"] == [oauth.conf(vendor)["issuer"]]
    assert "code" not in q


def test_auto_approve_is_a_runtime_switch(sandbox, oauth):
    sandbox.configure(auto_approve=True)
    r = oauth.http.get(oauth.conf("zendesk")["authorize_url"], params=oauth.auth_params("zendesk"))
    assert r.status_code == 302 and "code" in callback(r)
    sandbox.reset()
    assert (
        oauth.http.get(
            oauth.conf("zendesk")["authorize_url"], params=oauth.auth_params("zendesk")
        ).status_code
        == 200
    )


def test_create_app_options_auto_approve_device_flow_and_token_ttl(plain_http):
    http = plain_http
    with running_sandbox(auto_approve=True, device_flow=["shopify"], token_ttl=42) as sb:
        creds = sb.credentials()
        assert "device_url" in creds["shopify"]["oauth"] and "device_url" not in creds["zendesk"]["oauth"]
        conf = creds["calendly"]["oauth"]
        verifier, challenge = (
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",  # RFC 7636 Appendix B
        )
        r = http.get(
            conf["authorize_url"],
            params={
                "response_type": "code",
                "client_id": conf["client_id"],
                "redirect_uri": "http://127.0.0.1:1234/callback",
                "scope": "users:read",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = callback(r)["code"][0]
        tok = http.post(
            conf["token_url"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://127.0.0.1:1234/callback",
                "code_verifier": verifier,
            },
            auth=(conf["client_id"], conf["client_secret"]),
        ).json()
        assert tok["expires_in"] == 42
        assert sb.state.tokens.get("calendly", tok["access_token"]).expires_in(sb.state.clock()) in (41, 42)
        zd = http.post(creds["zendesk"]["base_url"] + "/oauth/device_authorization", data={"client_id": "x"})
        assert zd.status_code == 404
        sb.reset()  # the create_app options are what reset restores
        assert sb._call("GET", "/_sandbox/config")["auto_approve"] is True


# --- redirect URIs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:5555/callback",
        "http://127.0.0.1:65535/botctl/callback",
        "http://[::1]:5555/callback",
        "http://[::1]/botctl/callback",
    ],
)
def test_loopback_redirect_any_port(oauth, uri):
    r = oauth.authorize("hubspot", redirect_uri=uri)
    assert r.status_code == 302 and r.headers["location"].startswith(uri + "?")


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:5555/callback",  # not a loopback IP literal (RFC 8252 §8.3)
        "http://127.0.0.1:5555/callback/",
        "http://127.0.0.1:5555/Callback",
        "http://127.0.0.1:5555/callback?x=1",
        "http://127.0.0.1:5555/callback#frag",
        "https://127.0.0.1:5555/callback",
        "http://127.0.0.2:5555/callback",
        "http://127.0.0.1.evil.example:5555/callback",
        "http://evil.example@127.0.0.1:5555/callback",
        "http://evil.example/callback",
        "http://127.0.0.1:5555/other",
    ],
)
def test_unregistered_redirect_is_refused_without_redirecting(oauth, uri):
    r = oauth.authorize("zendesk", redirect_uri=uri)
    assert r.status_code == 400 and "location" not in r.headers
    assert "invalid_request" in r.text and r.headers["content-type"].startswith("text/html")


def test_unknown_client_and_missing_redirect_get_an_error_page(oauth):
    assert oauth.authorize("calendly", client_id="nope").status_code == 400
    assert oauth.authorize("calendly", redirect_uri=None).status_code == 400


def test_token_request_must_repeat_the_exact_redirect_uri(oauth):
    code, verifier, _ = oauth.code("zendesk", redirect_uri="http://127.0.0.1:5555/callback")
    r = oauth.exchange("zendesk", code, verifier, redirect_uri="http://127.0.0.1:6666/callback")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert (
        oauth.exchange("zendesk", code, verifier, redirect_uri="http://127.0.0.1:5555/callback").status_code
        == 200
    )


def test_errors_after_redirect_validation_go_back_to_the_client(oauth):
    q = callback(oauth.authorize("calendly", scope="calendar:everything"))
    assert q["error"] == ["invalid_scope"] and q["state"] == ["st-calendly"] and "iss" in q
    q = callback(oauth.authorize("calendly", response_type="token"))
    assert q["error"] == ["unsupported_response_type"]


# --- codes and PKCE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_code_replay_is_refused_and_revokes_the_tokens_issued_from_it(sandbox, oauth, vendor):
    code, verifier, _ = oauth.code(vendor)
    first = oauth.exchange(vendor, code, verifier).json()
    assert oauth.api(vendor, first["access_token"]).status_code == 200
    replay = oauth.exchange(vendor, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert oauth.api(vendor, first["access_token"]).status_code == 401
    assert oauth.refresh(vendor, first["refresh_token"]).json()["error"] == "invalid_grant"
    stats = sandbox.stats()
    assert stats["oauth_events"][vendor]["code_replay"] == 1
    assert stats["token_grant_errors"][vendor] == {"invalid_grant": 2}


def test_codes_expire_after_ten_minutes(sandbox, oauth):
    code, verifier, _ = oauth.code("zendesk")
    sandbox.state.oauth.stores["zendesk"].codes[code].expires_at -= 600
    r = oauth.exchange("zendesk", code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_wrong_verifier_is_invalid_grant(oauth):
    code, _, _ = oauth.code("calendly")
    other, _ = oauth.pkce()
    r = oauth.exchange("calendly", code, other)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_pkce_downgrade_verifier_without_challenge_is_invalid_request(oauth):
    r = oauth.authorize("zendesk")  # a confidential client may skip PKCE...
    code = callback(r)["code"][0]
    verifier, _ = oauth.pkce()
    r = oauth.exchange("zendesk", code, verifier)  # ...but then must not send a verifier (RFC 9700 §4.8)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_challenge_without_verifier_is_refused(oauth):
    code, _, _ = oauth.code("hubspot")
    r = oauth.exchange("hubspot", code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("method", ["plain", None, "S512"])
def test_only_s256_challenges(oauth, method):
    _, challenge = oauth.pkce()
    q = callback(oauth.authorize("shopify", code_challenge=challenge, code_challenge_method=method))
    assert q["error"] == ["invalid_request"] and "code" not in q


@pytest.mark.parametrize("vendor", ["calendly", "zendesk"])
def test_public_client_must_use_pkce_and_authenticates_with_none(oauth, vendor):
    public = oauth.conf(vendor)["public_client_id"]
    q = callback(oauth.authorize(vendor, client_id=public))
    assert q["error"] == ["invalid_request"]
    code, verifier, _ = oauth.code(vendor, client_id=public)
    assert oauth.exchange(vendor, code, None, public=True).json()["error"] == "invalid_request"
    r = oauth.exchange(vendor, code, verifier, public=True)
    assert r.status_code == 200, r.text
    tok = r.json()
    refreshed = oauth.refresh(vendor, tok["refresh_token"], public=True)
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != tok["refresh_token"]


def test_code_is_bound_to_its_client(oauth):
    code, verifier, _ = oauth.code("calendly")
    r = oauth.exchange("calendly", code, verifier, public=True)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# --- client authentication ----------------------------------------------------------------------------------


def test_client_authentication_follows_the_vendor(oauth):
    # Calendly web clients: HTTP Basic only.
    code, verifier, _ = oauth.code("calendly")
    c = oauth.conf("calendly")
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": oauth.REDIRECT,
        "code_verifier": verifier,
    }
    r = oauth.http.post(
        c["token_url"], data={**body, "client_id": c["client_id"], "client_secret": c["client_secret"]}
    )
    assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"
    r = oauth.http.post(c["token_url"], data=body, auth=(c["client_id"], "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client" and "www-authenticate" in r.headers
    assert (
        oauth.http.post(c["token_url"], data=body, auth=(c["client_id"], c["client_secret"])).status_code
        == 200
    )
    # Zendesk, HubSpot, Shopify: client_id/client_secret in the body.
    for vendor in ("zendesk", "hubspot", "shopify"):
        code, verifier, _ = oauth.code(vendor)
        c = oauth.conf(vendor)
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": oauth.REDIRECT,
            "code_verifier": verifier,
        }
        r = oauth.http.post(c["token_url"], data=body, auth=(c["client_id"], c["client_secret"]))
        assert r.json()["error"] == "invalid_client", vendor
        r = oauth.http.post(
            c["token_url"], data={**body, "client_id": c["client_id"], "client_secret": "wrong"}
        )
        assert r.json()["error"] == "invalid_client", vendor


def test_zendesk_token_endpoint_takes_json_and_lifetime_overrides(oauth):
    code, verifier, _ = oauth.code("zendesk")
    c = oauth.conf("zendesk")
    r = oauth.http.post(
        c["token_url"],
        json={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": oauth.REDIRECT,
            "code_verifier": verifier,
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
            "expires_in": 600,
            "refresh_token_expires_in": 999,  # below Zendesk's 7-day minimum: clamped
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 600 and r.json()["refresh_token_expires_in"] == 7 * 86400


def test_hubspot_v1_token_path_and_error_shape(oauth):
    tok = oauth.tokens("hubspot")
    v1 = oauth.conf("hubspot")["token_url_v1"]
    r = oauth.refresh("hubspot", tok["refresh_token"], url=v1)
    assert r.status_code == 200
    bad = oauth.refresh("hubspot", "no-such-token", url=v1).json()
    assert bad["error"] == "invalid_grant" and bad["status"] == "BAD_REFRESH_TOKEN" and bad["correlationId"]


def test_hubspot_introspection_knows_oauth_tokens(oauth):
    tok = oauth.tokens("hubspot", scope="oauth tickets")
    c = oauth.conf("hubspot")
    info = oauth.http.post(
        c["introspect_url"],
        data={"token": tok["access_token"], "client_id": c["client_id"], "client_secret": c["client_secret"]},
    ).json()
    assert (
        info["active"] is True
        and info["client_id"] == c["client_id"]
        and info["scopes"] == ["oauth", "tickets"]
    )


def test_shopify_callback_is_signed_and_comma_scopes(oauth):
    c = oauth.conf("shopify")
    _, _, q = oauth.code("shopify", scope="read_orders,read_customers")
    assert q["shop"] == ["acme.myshopify.com"] and q["timestamp"] and q["host"]
    params = {k: v[0] for k, v in q.items() if k != "hmac"}
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    expected = hmac.new(c["client_secret"].encode(), message.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(q["hmac"][0], expected)


def test_shopify_without_expiring_gets_a_legacy_offline_token(oauth):
    code, verifier, _ = oauth.code("shopify")
    c = oauth.conf("shopify")
    r = oauth.http.post(
        c["token_url"],
        data={
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
            "code": code,
            "code_verifier": verifier,
        },
    )
    tok = r.json()
    assert set(tok) == {"access_token", "scope"}  # no grant_type sent, none of the expiring fields back
    assert oauth.api("shopify", tok["access_token"]).status_code == 200


def test_unknown_tenant_is_the_vendors_404(sandbox, oauth):
    assert oauth.http.post(sandbox.url + "/zendesk/nope/oauth/tokens", data={}).status_code == 404
    assert oauth.http.get(sandbox.url + "/shopify/nope/admin/oauth/authorize").status_code == 404


# --- metadata and credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_rfc8414_metadata(sandbox, oauth, vendor):
    from authlib.oauth2 import rfc8414, rfc9207

    conf = oauth.conf(vendor)
    doc = oauth.http.get(conf["metadata_url"]).json()
    rfc8414.AuthorizationServerMetadata(doc).validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])
    assert doc["issuer"] == conf["issuer"]
    assert doc["authorization_endpoint"] == conf["authorize_url"]
    assert doc["token_endpoint"] == conf["token_url"]
    assert doc["revocation_endpoint"] == conf["revoke_url"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert conf["token_endpoint_auth_method"] in doc["token_endpoint_auth_methods_supported"]
    device = vendor in ("zendesk", "hubspot")
    assert ("device_authorization_endpoint" in doc) is device
    assert ("urn:ietf:params:oauth:grant-type:device_code" in doc["grant_types_supported"]) is device
    # RFC 8414 §3.1's own location for an issuer with a path.
    path = urlsplit(conf["issuer"]).path
    assert oauth.http.get(sandbox.url + "/.well-known/oauth-authorization-server" + path).json() == doc


def test_credentials_oauth_block(creds, sandbox):
    for vendor in VENDORS:
        o = creds[vendor]["oauth"]
        for key in ("client_id", "client_secret", "authorize_url", "token_url", "revoke_url", "metadata_url"):
            assert o[key], (vendor, key)
        assert o["redirect_uris"][:2] == ["http://127.0.0.1/callback", "http://127.0.0.1/botctl/callback"]
        assert o["token_endpoint_auth_method"] == (
            "client_secret_basic" if vendor == "calendly" else "client_secret_post"
        )
        assert ("device_url" in o) is (vendor in ("zendesk", "hubspot"))
    assert creds["zendesk"]["oauth"]["authorize_url"].endswith("/zendesk/acme/oauth/authorizations/new")
    assert creds["shopify"]["oauth"]["token_url"].endswith("/shopify/acme/admin/oauth/access_token")
    assert "revoke_url" in creds["shopify"]["oauth"]["sandbox_extensions"]
    sandbox.configure(device_flow=[])
    assert "device_url" not in sandbox.oauth("zendesk")


# --- expiry ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_forced_expiry_gets_the_vendors_401_and_refresh_recovers(sandbox, oauth, vendor):
    tok = oauth.tokens(vendor)
    assert sandbox.expire_oauth_tokens(vendor)["expired"] == 1
    r = oauth.api(vendor, tok["access_token"])
    assert r.status_code == 401 and EXPIRED_401[vendor](r.json()), r.text
    fresh = oauth.refresh(vendor, tok["refresh_token"]).json()
    assert oauth.api(vendor, fresh["access_token"]).status_code == 200


def test_expired_refresh_token_is_invalid_grant(sandbox, oauth):
    tok = oauth.tokens("zendesk")
    assert sandbox.expire_oauth_tokens("zendesk", refresh_tokens=True)["refresh_tokens_expired"] == 1
    assert oauth.refresh("zendesk", tok["refresh_token"]).json()["error"] == "invalid_grant"
