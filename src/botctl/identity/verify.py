"""The Verifier: strict checks of one workspace's identity tokens, each refusal with its precise reason."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from botctl.connectors.base import Visitor
from botctl.identity.emails import _visitor_email
from botctl.identity.errors import IdentityError
from botctl.identity.jwks import JwksCache, jwks_cache
from botctl.identity.keys import _KEY_OWNER, IdentityKey, iso, list_keys
from botctl.identity.replay import ReplayCache, replay_cache
from botctl.identity.workspace_rules import rules

if TYPE_CHECKING:
    from botctl.session import Session
    from botctl.workspaces import Workspace

MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_S = 60
ALGS = ("HS256", "RS256", "ES256", "EdDSA")
FORBIDDEN_HEADERS = frozenset({"crit", "jku", "x5u", "x5c", "jwk"})
_COMPACT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")

ALLOWED_TYP = frozenset({"jwt", "application/jwt"})
# What a token is for (claim `botctl_use`): "widget" (the default when the claim is absent: every token a site
# signed before the claim existed) for the widget's API, chat, actions and the answer to a confirmation; "mcp"
# for a bot's MCP client, and nothing else. The bot never holds a token that can confirm its own ask, and the
# widget's token is refused by the MCP endpoint.
USE_CLAIM = "botctl_use"
USES = ("widget", "mcp")


class Verifier:
    """Verifies identity tokens for one workspace. Build one per request (it reads the keys and rules).

    `verify` is synchronous; `averify` is for event loops (the provider): a key set that has to be
    fetched is awaited without blocking the loop. JWKS key sets come from `jwks` (default: the
    process-wide `jwks_cache()`), never fetched on the caller's thread.
    """

    def __init__(
        self, app: Session, ws: Workspace, *, jwks: JwksCache | None = None, replay: ReplayCache | None = None
    ) -> None:
        self.app = app
        self.ws = ws
        self.rules = rules(app.vault.conn, ws)
        self.issuer, self.max_lifetime = self.rules.issuer, self.rules.max_lifetime
        self.keys = list_keys(app.vault.conn, ws)
        self._secrets: dict[str, bytes] = {}
        self._jwks = jwks
        self._replay = replay

    @property
    def jwks(self) -> JwksCache:
        if self._jwks is None:
            self._jwks = jwks_cache()
        return self._jwks

    def _secret(self, key: IdentityKey) -> bytes:
        if key.kid not in self._secrets:
            s = self.app.vault.get_secret(self.ws.ref, _KEY_OWNER.format(kid=key.kid), "hs256_secret")
            if s is None:
                raise IdentityError("key_missing")
            self._secrets[key.kid] = s.reveal().encode()
        return self._secrets[key.kid]

    def _select(self, token: str) -> tuple[dict[str, Any], IdentityKey | None, list[IdentityKey]]:
        """Checks that need no key; then (header, the registered key, or the JWKS sources to ask)."""
        if not isinstance(token, str) or len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
            raise IdentityError("token_too_large")
        if not _COMPACT.match(token):
            raise IdentityError("malformed")
        header = _header(token)
        bad = FORBIDDEN_HEADERS & set(header)
        if bad:
            raise IdentityError(f"forbidden_header:{sorted(bad)[0]}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGS:
            raise IdentityError("alg_not_allowed")
        live = [k for k in self.keys if k.active(iso(time.time()))]
        kid = header.get("kid")
        if kid is None:
            if len(live) != 1:
                raise IdentityError("kid_required")
            key = live[0]
            if key.kind == "jwks_url":
                raise IdentityError("kid_required")
        else:
            if not isinstance(kid, str):
                raise IdentityError("kid_not_string")
            exact = [k for k in live if k.kid == kid]
            if exact and exact[0].kind != "jwks_url":
                key = exact[0]
            else:
                # A JWKS row's own kid is only a label: the token's kid names a key inside the set.
                sources = exact or [k for k in live if k.kind == "jwks_url"]
                if not sources:
                    raise IdentityError("unknown_kid")
                fitting = [k for k in sources if k.alg == alg]
                if not fitting:
                    raise IdentityError("alg_mismatch")
                return header, None, fitting
        if alg != key.alg:  # each key is used with exactly one algorithm (RFC 8725 §3.1)
            raise IdentityError("alg_mismatch")
        return header, key, []

    def _registered_material(self, key: IdentityKey) -> Any:
        return self._secret(key) if key.kind == "secret" else key.public_key

    def verify(self, token: str, *, use: str = "widget") -> Visitor:
        """The visitor of a good token signed for `use` (USES: "widget" unless the caller is the MCP endpoint)."""
        header, key, sources = self._select(token)
        if key is not None:
            return self._decode(token, header, self._registered_material(key), use)
        urls = [s.jwks_url or "" for s in sources]
        return self._decode(token, header, self.jwks.key_sync(urls, header["kid"], header["alg"]), use)

    async def averify(self, token: str, *, use: str = "widget") -> Visitor:
        header, key, sources = self._select(token)
        if key is not None:
            return self._decode(token, header, self._registered_material(key), use)
        urls = [s.jwks_url or "" for s in sources]
        return self._decode(token, header, await self.jwks.key(urls, header["kid"], header["alg"]), use)

    def _decode(self, token: str, header: dict[str, Any], material: Any, use: str = "widget") -> Visitor:
        import jwt

        r = self.rules
        required = (
            ["sub", "exp", "iat", "aud"] + (["iss"] if r.issuer else []) + (["jti"] if r.jti_replay else [])
        )
        try:
            claims = jwt.decode(
                token,
                material,
                algorithms=[header["alg"]],
                audience=self.ws.name,
                issuer=r.issuer,
                leeway=LEEWAY_S,
                options={
                    "require": required,
                    "strict_aud": True,
                    "enforce_minimum_key_length": True,
                    "verify_iat": True,
                    "verify_nbf": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise IdentityError("expired") from None
        except jwt.ImmatureSignatureError:
            raise IdentityError("not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise IdentityError("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise IdentityError("wrong_issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise IdentityError(f"missing_claim:{exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise IdentityError("bad_signature") from None
        except jwt.exceptions.InvalidJTIError:
            raise IdentityError("bad_jti") from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise IdentityError("invalid_token") from None
        # Signed header fields, checked once the signature holds (so a tampered header reads as such).
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ALLOWED_TYP):
            raise IdentityError("typ_not_allowed")  # e.g. at+jwt: an access token is not a visitor identity
        if "cty" in header:
            raise IdentityError("cty_not_allowed")  # nested tokens are not accepted
        if r.issuer is not None and claims.get("iss") != r.issuer:
            raise IdentityError("wrong_issuer")  # exact, whatever the JWT library's notion of a match
        visitor = self._visitor(claims, time.time())
        if r.jti_replay:
            jti = claims.get("jti")
            if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
                raise IdentityError("bad_jti")
            replay = self._replay or self._shared_replay() or replay_cache()
            refused = replay.check_and_add(self.ws.id, jti, float(claims["exp"]) + LEEWAY_S)
            if refused:
                raise IdentityError(refused)
        # Last, so every other reason keeps its precedence (and a jti is spent even at the wrong endpoint).
        if claims.get(USE_CLAIM, "widget") != use:
            raise IdentityError("wrong_use")  # e.g. the bot's token answering a confirmation
        return visitor

    def _shared_replay(self):  # noqa: ANN202 - SharedReplay | None
        """On a PostgreSQL home the nodes share one replay cache (botctl/identity/replay.py)."""
        from botctl import store

        conn = self.app.vault.conn
        if store.dialect(conn) != "postgresql":
            return None
        from botctl.identity.replay import SharedReplay

        return SharedReplay(conn)

    def _visitor(self, claims: dict[str, Any], now_ts: float) -> Visitor:
        exp, iat = claims.get("exp"), claims.get("iat")
        for v in (exp, iat):
            if isinstance(v, bool) or not isinstance(v, int | float) or v != v or abs(v) > 1e12:
                raise IdentityError("bad_time_claim")
        if exp - iat > self.max_lifetime:
            raise IdentityError("lifetime_too_long")
        if iat > now_ts + LEEWAY_S:
            raise IdentityError("issued_in_future")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 256:
            raise IdentityError("bad_sub")
        email = _visitor_email(claims, self.rules)
        name = claims.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise IdentityError("bad_name")
        return Visitor(sub=sub, email=email, name=name)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, parsed here (not by PyJWT) so each refusal gets its precise reason."""
    import base64
    import binascii
    import json

    seg = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))
    except (
        binascii.Error,
        ValueError,
        RecursionError,
    ):  # RecursionError: `[[[…` nested past the C parser's limit
        raise IdentityError("malformed_header") from None
    if not isinstance(header, dict):
        raise IdentityError("malformed_header")
    return header
