"""Visitor identity: the business's site signs a short-lived JWT for its logged-in visitor.

Per workspace, botctl holds HS256 secrets (generated here, shown once, stored encrypted) or the
site's public keys (RS256 / ES256 / EdDSA, PEM or a pinned JWKS URL). `verify` is the only way a
`Visitor` comes to exist: `{sub, email, name}` are taken from verified claims and nowhere else.

Rules (docs/design.md §3, RFC 8725): size cap and compact-form check before any decoding; `crit`,
`jku`, `x5u`, `x5c` and embedded `jwk` refused; `kid` selects among this workspace's keys only; each
key has exactly one algorithm; required `sub`, `exp`, `iat`, `aud` (= workspace name, exact),
`iss` (exact) when configured; lifetime `exp - iat` capped per workspace; leeway 60 s at most; a
`typ` other than JWT (e.g. `at+jwt`) and `cty` refused; `email` ASCII (unless the workspace allows
Unicode addresses), without controls, bidi or zero-width characters, and never with
`email_verified` other than true (required per workspace); `jti` required and accepted once per
workspace when the workspace turns the replay cache on. `botctl_use` says what a token is for: absent or
"widget" for the widget (chat, actions, answering a confirmation), "mcp" for a bot's MCP client only; each
endpoint refuses the other's (`wrong_use`), so a bot cannot confirm its own ask.
JWKS key sets are fetched on a background thread (`JwksCache`), never on the caller's, and expire.
Any failure is one error (`invalid_identity`) with an internal reason for the audit record; the
token itself is never logged, audited or echoed.

Modules: `keys` (HS256 secrets, public keys, JWKS URLs), `workspace_rules` (`identity rules`), `emails`
(`email_key`, `operator_email`), `verify` (the Verifier), `replay` (the jti cache), `jwks` (key sets
fetched in the background), `minting` (test tokens), `errors` (`IdentityError`). Everything callers use
is re-exported here, so `from botctl import identity` / `identity.X` work as before.
"""

from botctl.durations import parse_duration  # re-exported: the one duration parser
from botctl.identity.emails import email_key, operator_email
from botctl.identity.errors import IdentityError
from botctl.identity.jwks import (
    JWKS_BACKOFF_CAP_S,
    JWKS_DEADLINE_S,
    JWKS_FIRST_WAIT_S,
    JWKS_IDLE_S,
    JWKS_MIN_REFETCH_S,
    JWKS_MIN_REFRESH_S,
    JWKS_REFRESH_AT,
    JWKS_REFRESH_S,
    MAX_JWKS_BYTES,
    MAX_JWKS_KEYS,
    JwksCache,
    jwks_cache,
)
from botctl.identity.keys import (
    DEFAULT_OVERLAP_S,
    IdentityKey,
    add_public_key,
    check_public_key,
    is_loopback_url,
    iso,
    list_keys,
    remove_key,
    rotate,
)
from botctl.identity.minting import mint
from botctl.identity.replay import REPLAY_MAX_PER_WORKSPACE, ReplayCache, replay_cache
from botctl.identity.verify import (
    ALGS,
    ALLOWED_TYP,
    FORBIDDEN_HEADERS,
    LEEWAY_S,
    MAX_TOKEN_BYTES,
    USE_CLAIM,
    USES,
    Verifier,
)
from botctl.identity.workspace_rules import (
    RULE_DEFAULTS,
    Rules,
    check_issuer,
    rules,
    rules_key,
    set_settings,
    settings,
)

__all__ = [
    "ALGS",
    "ALLOWED_TYP",
    "DEFAULT_OVERLAP_S",
    "FORBIDDEN_HEADERS",
    "JWKS_BACKOFF_CAP_S",
    "JWKS_DEADLINE_S",
    "JWKS_FIRST_WAIT_S",
    "JWKS_IDLE_S",
    "JWKS_MIN_REFETCH_S",
    "JWKS_MIN_REFRESH_S",
    "JWKS_REFRESH_AT",
    "JWKS_REFRESH_S",
    "LEEWAY_S",
    "MAX_JWKS_BYTES",
    "MAX_JWKS_KEYS",
    "MAX_TOKEN_BYTES",
    "REPLAY_MAX_PER_WORKSPACE",
    "RULE_DEFAULTS",
    "USES",
    "USE_CLAIM",
    "IdentityError",
    "IdentityKey",
    "JwksCache",
    "ReplayCache",
    "Rules",
    "Verifier",
    "add_public_key",
    "check_issuer",
    "check_public_key",
    "email_key",
    "is_loopback_url",
    "iso",
    "jwks_cache",
    "list_keys",
    "mint",
    "operator_email",
    "parse_duration",
    "remove_key",
    "replay_cache",
    "rotate",
    "rules",
    "rules_key",
    "set_settings",
    "settings",
]
