"""Visitor identity tokens: the happy path and the attack list of docs/design.md §3.3."""

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from botctl import identity, workspaces
from botctl.identity import IdentityError, Verifier
from botctl.session import Session


@pytest.fixture
def env(home):
    app = Session(home)
    ws = workspaces.create(app, "acme", plan="pro")
    other = workspaces.create(app, "other", plan="pro")
    key, secret = identity.rotate(app, ws)
    okey, osecret = identity.rotate(app, other)
    yield app, ws, key, secret.reveal(), other, osecret.reveal()
    app.close()


def _claims(**over):
    now = int(time.time())
    c = {
        "sub": "user-1",
        "email": "Ada@Example.com",
        "name": "Ada Lovelace",
        "aud": "acme",
        "iat": now,
        "exp": now + 600,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _hs(secret, claims=None, headers=None, alg="HS256"):
    return jwt.encode(claims or _claims(), secret, algorithm=alg, headers=headers)


def _b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def verify(app, ws, token):
    return Verifier(app, workspaces.get(app.vault.conn, ws.name)).verify(token)


def test_valid_token(env):
    app, ws, key, secret, *_ = env
    v = verify(app, ws, _hs(secret, headers={"kid": key.kid}))
    assert (v.sub, v.email, v.name) == ("user-1", "ada@example.com", "Ada Lovelace")


def test_secret_is_256_bits_plain_text(env):
    _, _, key, secret, *_ = env
    assert len(secret) >= 43 and secret.isascii()
    assert key.alg == "HS256" and key.kind == "secret"


def test_missing_kid_ok_with_single_key(env):
    app, ws, key, secret, *_ = env
    assert verify(app, ws, _hs(secret)).sub == "user-1"


def _refused(env, token, reason=None):
    app, ws, *_ = env
    with pytest.raises(IdentityError) as exc:
        verify(app, ws, token)
    if reason:
        assert exc.value.reason.startswith(reason), exc.value.reason
    return exc.value.reason


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_variants(env, alg):
    _, _, key, *_ = env
    tok = f"{_b64({'alg': alg, 'typ': 'JWT', 'kid': key.kid})}.{_b64(_claims())}."
    _refused(env, tok)
    _refused(env, tok + "AAAA")


def test_key_confusion_hs256_with_public_key(env, tmp_path):
    app, ws, *_ = env
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    k = identity.add_public_key(app, ws, alg="RS256", pem=pem.decode(), kid="rsa1")
    # Sign HS256 using the public PEM as the HMAC secret (the McLean attack).
    import hashlib
    import hmac

    header, payload = _b64({"alg": "HS256", "kid": k.kid}), _b64(_claims())
    sig = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _refused(env, f"{header}.{payload}.{_b64(sig)}", "alg_mismatch")
    # The right algorithm with the right key works.
    good = jwt.encode(_claims(), priv, algorithm="RS256", headers={"kid": "rsa1"})
    assert verify(app, ws, good).sub == "user-1"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.rsplit(".", 1)[0] + ".",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + ".",
        lambda t: t + ".extra",
    ],
)
def test_signature_stripping(env, mangle):
    _, _, key, secret, *_ = env
    _refused(env, mangle(_hs(secret, headers={"kid": key.kid})))


@pytest.mark.parametrize("weak", ["", "secret", "password123"])
def test_weak_secret_signatures(env, weak):
    _, _, key, *_ = env
    header, payload = _b64({"alg": "HS256", "kid": key.kid}), _b64(_claims())
    import hashlib
    import hmac

    sig = hmac.new(weak.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _refused(env, f"{header}.{payload}.{_b64(sig)}", "bad_signature")


def test_tampered_payload(env):
    _, _, key, secret, *_ = env
    tok = _hs(secret, headers={"kid": key.kid})
    h, p, s = tok.split(".")
    p2 = _b64(_claims(sub="admin"))
    _refused(env, f"{h}.{p2}.{s}", "bad_signature")


@pytest.mark.parametrize(
    "kid", ["../../../../dev/null", "/dev/null", "x' UNION SELECT '1';--", "|sleep 10", ""]
)
def test_kid_injection(env, kid):
    _refused(env, _hs("1" * 32, headers={"kid": kid}), "unknown_kid")


def test_non_string_kid(env):
    _, _, key, secret, *_ = env
    import hashlib
    import hmac

    header, payload = _b64({"alg": "HS256", "kid": 7}), _b64(_claims())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _refused(env, f"{header}.{payload}.{_b64(sig)}", "kid_not_string")


@pytest.mark.parametrize("param", ["jku", "x5u", "jwk", "x5c"])
def test_header_key_sources_refused(env, param):
    _, _, key, secret, *_ = env
    _refused(
        env,
        _hs(secret, headers={"kid": key.kid, param: "https://attacker.example/jwks.json"}),
        "forbidden_header",
    )


def test_embedded_jwk_attack(env):
    priv = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(priv.public_key()))
    tok = jwt.encode(_claims(), priv, algorithm="ES256", headers={"jwk": jwk})
    _refused(env, tok, "forbidden_header")


@pytest.mark.parametrize("crit", [["exp"], [], "b64", ["foo"]])
def test_crit_refused(env, crit):
    _, _, key, secret, *_ = env
    header = _b64({"alg": "HS256", "kid": key.kid, "crit": crit})
    payload = _b64(_claims())
    import hashlib
    import hmac

    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _refused(env, f"{header}.{payload}.{_b64(sig)}", "forbidden_header")


def test_expired(env):
    _, _, key, secret, *_ = env
    now = int(time.time())
    _refused(env, _hs(secret, _claims(iat=now - 700, exp=now - 61), {"kid": key.kid}), "expired")


def test_exp_within_leeway_accepted(env):
    app, ws, key, secret, *_ = env
    now = int(time.time())
    assert verify(app, ws, _hs(secret, _claims(iat=now - 600, exp=now - 30), {"kid": key.kid}))


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "aud"])
def test_missing_required_claim(env, claim):
    _, _, key, secret, *_ = env
    _refused(env, _hs(secret, _claims(**{claim: None}), {"kid": key.kid}))


def test_future_iat_and_nbf(env):
    _, _, key, secret, *_ = env
    now = int(time.time())
    _refused(env, _hs(secret, _claims(iat=now + 3600, exp=now + 3700), {"kid": key.kid}))
    _refused(env, _hs(secret, _claims(nbf=now + 120), {"kid": key.kid}))


def test_overlong_lifetime(env):
    _, _, key, secret, *_ = env
    now = int(time.time())
    _refused(
        env, _hs(secret, _claims(iat=now, exp=now + 10 * 365 * 86400), {"kid": key.kid}), "lifetime_too_long"
    )


@pytest.mark.parametrize("aud", ["other", ["acme", "other"], "", "ACME"])
def test_audience(env, aud):
    _, _, key, secret, *_ = env
    _refused(env, _hs(secret, _claims(aud=aud), {"kid": key.kid}))


def test_token_for_other_workspace_refused(env):
    app, ws, key, secret, other, osecret = env
    tok = _hs(osecret, _claims(aud="other"))
    assert verify(app, other, tok).sub == "user-1"
    _refused(env, tok)  # on acme: wrong audience and unknown key


def test_issuer(env):
    app, ws, key, secret, *_ = env
    identity.set_settings(app, ws, issuer="https://acme.example")
    _refused(env, _hs(secret, _claims(), {"kid": key.kid}), "missing_claim:iss")
    _refused(env, _hs(secret, _claims(iss="https://acme.example.evil"), {"kid": key.kid}), "wrong_issuer")
    assert verify(app, ws, _hs(secret, _claims(iss="https://acme.example"), {"kid": key.kid}))


@pytest.mark.parametrize(
    "over",
    [
        {"sub": 123},
        {"sub": ""},
        {"exp": "9999999999"},
        {"exp": 1e308},
        {"exp": True},
        {"email": 5},
        {"email": "not-an-email"},
        {"name": ["x"]},
    ],
)
def test_type_confusion(env, over):
    _, _, key, secret, *_ = env
    _refused(env, _hs(secret, _claims(**over), {"kid": key.kid}))


def test_oversize_and_garbage(env):
    _, _, key, secret, *_ = env
    big = _hs(secret, _claims(pad="x" * 9000), {"kid": key.kid})
    _refused(env, big, "token_too_large")
    for garbage in [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        '{"alg":"none"}.e30.',
        "ey J.e30.x",
        "é.é.é",
        "a?b.c#d.e",
    ]:
        _refused(env, garbage)


def test_json_serialization_refused(env):
    _refused(
        env, json.dumps({"payload": _b64(_claims()), "signatures": [{"protected": "x", "signature": "y"}]})
    )


def test_rotation_overlap_and_expiry(env):
    app, ws, key1, secret1, *_ = env
    key2, secret2 = identity.rotate(app, ws)
    old = _hs(secret1, headers={"kid": key1.kid})
    new = _hs(secret2.reveal(), headers={"kid": key2.kid})
    assert verify(app, ws, old) and verify(app, ws, new)  # overlap: both work
    _refused(env, _hs(secret2.reveal()), "kid_required")  # two live keys: kid needed
    identity.rotate(app, ws, expire_previous=True)
    _refused(env, old, "unknown_kid")
    _refused(env, new, "unknown_kid")
    identity.remove_key(app, ws, key1.kid)
    assert key1.kid not in [k.kid for k in identity.list_keys(app.vault.conn, ws)]


@pytest.mark.parametrize(
    "alg, make",
    [
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", lambda: ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_public_key_algorithms(env, alg, make):
    app, ws, *_ = env
    priv = make()
    pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    identity.add_public_key(app, ws, alg=alg, pem=pem.decode(), kid=f"pk-{alg}")
    tok = jwt.encode(_claims(), priv, algorithm=alg, headers={"kid": f"pk-{alg}"})
    assert verify(app, ws, tok).email == "ada@example.com"
    # Same key id, other algorithm: refused.
    _refused(env, jwt.encode(_claims(), "x" * 32, algorithm="HS256", headers={"kid": f"pk-{alg}"}))


def test_ecdsa_zero_signature(env):
    app, ws, *_ = env
    priv = ec.generate_private_key(ec.SECP256R1())
    pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    identity.add_public_key(app, ws, alg="ES256", pem=pem.decode(), kid="ec")
    header, payload = _b64({"alg": "ES256", "kid": "ec"}), _b64(_claims())
    _refused(env, f"{header}.{payload}.{_b64(bytes(64))}", "bad_signature")


def test_bad_public_key_inputs(env):
    app, ws, *_ = env
    from botctl.errors import UsageError

    with pytest.raises(UsageError):
        identity.add_public_key(app, ws, alg="RS256", pem="not a pem")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(UsageError):
        identity.add_public_key(
            app,
            ws,
            alg="RS256",
            pem=small.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
        )
    with pytest.raises(UsageError):
        identity.add_public_key(app, ws, alg="HS256", pem="x")
    with pytest.raises(UsageError):
        identity.add_public_key(app, ws, alg="RS256", jwks_url="http://example.com/jwks")


def test_mint_round_trip(env):
    app, ws, *_ = env
    tok = identity.mint(app, ws, sub="u9", email="grace@example.com", name=None, ttl_s=600)
    assert verify(app, ws, tok).sub == "u9"


def test_a_token_is_accepted_only_for_what_it_was_signed_for(env):
    """botctl_use: the widget's token (no claim, or "widget") is refused where the bot's is required, and the
    bot's ("mcp") everywhere else, so a bot cannot answer the visitor's confirmation with its own token."""
    from botctl.errors import UsageError

    app, ws, *_ = env
    widget = identity.mint(app, ws, sub="u9", email="grace@example.com", name=None, ttl_s=600)
    explicit = identity.mint(app, ws, sub="u9", email="grace@example.com", name=None, ttl_s=600, use="widget")
    bot = identity.mint(app, ws, sub="u9", email="grace@example.com", name=None, ttl_s=600, use="mcp")
    for tok in (widget, explicit):
        assert identity.Verifier(app, ws).verify(tok).sub == "u9"
        with pytest.raises(identity.IdentityError) as refused:
            identity.Verifier(app, ws).verify(tok, use="mcp")
        assert refused.value.reason == "wrong_use"
    assert identity.Verifier(app, ws).verify(bot, use="mcp").sub == "u9"
    with pytest.raises(identity.IdentityError) as refused:
        identity.Verifier(app, ws).verify(bot)
    assert refused.value.reason == "wrong_use"
    with pytest.raises(UsageError):
        identity.mint(app, ws, sub="u9", email=None, name=None, ttl_s=600, use="admin")


def test_secret_not_stored_in_plaintext(env, home):
    app, ws, key, secret, *_ = env
    app.close()
    for p in home.path.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes()
