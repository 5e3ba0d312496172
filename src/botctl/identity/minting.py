"""Tokens minted as a site backend would, signed with the workspace's newest HS256 secret (for testing)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botctl.errors import UsageError
from botctl.identity.keys import _KEY_OWNER, iso, list_keys
from botctl.identity.workspace_rules import settings

if TYPE_CHECKING:
    from botctl.session import Session
    from botctl.workspaces import Workspace


def mint(
    app: Session,
    ws: Workspace,
    *,
    sub: str,
    email: str | None,
    name: str | None,
    ttl_s: int,
    kid: str | None = None,
    use: str | None = None,
) -> str:
    """A token signed with the workspace's newest HS256 secret, as a site backend would (for testing).
    `use="mcp"` signs one for a bot's MCP client (claim `botctl_use`); without it, one for the widget."""
    import jwt

    now = int(time.time())
    secrets_ = [k for k in list_keys(app.vault.conn, ws) if k.kind == "secret" and k.active(iso(now))]
    if kid:
        secrets_ = [k for k in secrets_ if k.kid == kid]
    if not secrets_:
        raise UsageError(
            f"workspace {ws.name!r} has no HS256 secret to sign with.",
            hint=f"Create one: botctl identity rotate -w {ws.name}",
        )
    key = secrets_[-1]
    secret = app.vault.get_secret(ws.ref, _KEY_OWNER.format(kid=key.kid), "hs256_secret")
    assert secret is not None
    issuer, max_lifetime = settings(app.vault.conn, ws)
    if ttl_s > max_lifetime:
        raise UsageError(f"--ttl is longer than this workspace accepts ({max_lifetime}s).")
    claims: dict[str, Any] = {"sub": sub, "aud": ws.name, "iat": now, "exp": now + ttl_s}
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    if issuer:
        claims["iss"] = issuer
    if use is not None:
        if use not in ("widget", "mcp"):
            raise UsageError(
                f"invalid --use {use!r}.", hint="widget (the widget's token) or mcp (a bot's MCP client)."
            )
        claims["botctl_use"] = use
    return jwt.encode(claims, secret.reveal(), algorithm="HS256", headers={"kid": key.kid})
