import typer

from botctl.cli import context, output

app = context.group()
WS = typer.Option(
    ...,
    "-w",
    "--workspace",
    envvar="BOTCTL_WORKSPACE",
    metavar="NAME",
    autocompletion=context.complete_workspace,
    help="Workspace.",
)


def _parse_duration(text: str, flag: str) -> int:
    from botctl.durations import parse_duration

    return parse_duration(text, flag)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    workspace: str = WS,
    overlap: str = typer.Option(
        "24h", "--overlap", metavar="DURATION", help="How long the previous secret stays valid."
    ),
    expire_previous: bool = typer.Option(False, "--expire-previous", help="End the previous secrets now."),
    json_out: bool = typer.Option(False, "--json", help='Print {"kid", "alg", "secret"} as JSON.'),
) -> None:
    """New HS256 signing secret for your site's backend (shown once; previous one overlaps)."""
    from botctl import identity, workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    key, secret = identity.rotate(
        a, ws, overlap_s=_parse_duration(overlap, "--overlap"), expire_previous=expire_previous
    )
    if json_out:
        output.emit_json({"kid": key.kid, "alg": key.alg, "secret": secret.reveal()})
        return
    output.status(
        f"new HS256 secret for {ws.name}, kid {key.kid}. It is shown once; store it in your site's backend:"
    )
    print(secret.reveal())
    output.status(
        "Sign tokens with it (HS256, header kid, claims sub, email, name, aud=" + ws.name + ", iat, exp)."
    )


@app.command("add-key")
def add_key(
    ctx: typer.Context,
    workspace: str = WS,
    public_key: str = typer.Option(None, "--public-key", metavar="FILE", help="PEM public key file."),
    jwks_url: str = typer.Option(None, "--jwks-url", metavar="URL", help="Your site's JWKS (https; pinned)."),
    alg: str = typer.Option(..., "--alg", metavar="ALG", help="RS256 | ES256 | EdDSA"),
    kid: str = typer.Option(
        None, "--kid", metavar="KID", help="Key id your tokens carry (default: generated)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Trust your site's public key (or JWKS) to sign visitor tokens."""
    from pathlib import Path

    from botctl import identity, workspaces
    from botctl.errors import UsageError

    output.use_json(json_out)
    pem = None
    if public_key:
        try:
            pem = Path(public_key).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read {public_key}: {exc.strerror}.") from None
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    key = identity.add_public_key(a, ws, alg=alg, pem=pem, jwks_url=jwks_url, kid=kid)
    if json_out:
        output.emit_json(key.as_dict())
    else:
        output.status(f"{ws.name}: trusting {key.alg} key {key.kid}")


@app.command("list")
def list_(
    ctx: typer.Context,
    workspace: str = WS,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Identity keys of a workspace (never the secrets)."""
    from botctl import identity, workspaces
    from botctl.vault import Vault

    output.use_json(json_out)
    vault = Vault.open_readonly(context.home(ctx))
    if vault is None:
        from botctl.errors import NotFound

        raise NotFound(f"no workspace named {workspace!r}.", code="unknown_workspace")
    with vault:
        ws = workspaces.get(vault.conn, workspace)
        keys = identity.list_keys(vault.conn, ws)
        rules = identity.rules(vault.conn, ws)
    if json_out:
        output.emit_json(
            {
                "workspace": ws.name,
                "issuer": rules.issuer,
                "max_lifetime_s": rules.max_lifetime,
                "rules": rules.as_dict(),
                "keys": [k.as_dict() for k in keys],
            }
        )
        return
    output.table(
        ["KID", "ALG", "KIND", "CREATED", "VALID UNTIL"],
        [(k.kid, k.alg, k.kind, k.created_at[:19], k.expires_at[:19] if k.expires_at else "-") for k in keys],
        empty=f"no identity keys; create one with `botctl identity rotate -w {ws.name}`",
    )


def _describe(ws_name: str, rules) -> str:  # noqa: ANN001 - identity.Rules (imported lazily)
    return (
        f"{ws_name}: issuer {rules.issuer or '(not required)'}, max lifetime {rules.max_lifetime}s, "
        f"email_verified {'required' if rules.require_email_verified else 'not required (false refused)'}, "
        f"emails {'Unicode allowed (compared exactly)' if rules.unicode_email else 'ASCII only'}, "
        f"jti replay cache {'on' if rules.jti_replay else 'off'}"
    )


@app.command("rules")
def rules_(
    ctx: typer.Context,
    workspace: str = WS,
    issuer: str = typer.Option(None, "--issuer", metavar="ISS", help="Require exactly this iss claim."),
    no_issuer: bool = typer.Option(False, "--no-issuer", help="Stop requiring an iss claim."),
    max_lifetime: str = typer.Option(
        None, "--max-lifetime", metavar="DURATION", help="Longest exp - iat (e.g. 1h)."
    ),
    require_email_verified: bool = typer.Option(
        None,
        "--require-email-verified/--no-require-email-verified",
        help="Refuse tokens with an email unless email_verified is true.",
    ),
    unicode_email: bool = typer.Option(
        None,
        "--unicode-email/--ascii-email",
        help="Accept non-ASCII emails (compared exactly; default: refused).",
    ),
    jti_replay: bool = typer.Option(
        None,
        "--jti-replay/--no-jti-replay",
        help="Require a jti and accept each token once (in the daemon's memory).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the rules as JSON."),
) -> None:
    """Show or change the workspace's token rules (issuer, lifetime, email, jti)."""
    from botctl import identity, workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    if (
        any(v is not None for v in (issuer, max_lifetime, require_email_verified, unicode_email, jti_replay))
        or no_issuer
    ):
        rules = identity.set_settings(
            a,
            ws,
            issuer=issuer,
            clear_issuer=no_issuer,
            max_lifetime=_parse_duration(max_lifetime, "--max-lifetime") if max_lifetime else None,
            require_email_verified=require_email_verified,
            unicode_email=unicode_email,
            jti_replay=jti_replay,
        )
    else:
        rules = identity.rules(a.vault.conn, ws)
    if json_out:
        output.emit_json({"workspace": ws.name, **rules.as_dict()})
    else:
        output.status(_describe(ws.name, rules))


@app.command("remove")
def remove(ctx: typer.Context, kid: str = typer.Argument(..., metavar="KID"), workspace: str = WS) -> None:
    """Stop trusting a key now."""
    from botctl import identity, workspaces

    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    identity.remove_key(a, ws, kid)
    output.status(f"{ws.name}: key {kid} removed")


@app.command("mint")
def mint(
    ctx: typer.Context,
    workspace: str = WS,
    sub: str = typer.Option(..., "--sub", metavar="ID", help="The visitor's id at your site."),
    email: str = typer.Option(None, "--email", metavar="EMAIL"),
    name: str = typer.Option(None, "--name", metavar="NAME"),
    ttl: str = typer.Option("10m", "--ttl", metavar="DURATION"),
    use: str = typer.Option(
        None,
        "--use",
        metavar="widget|mcp",
        help="mcp: a token for a bot's MCP client (it cannot answer confirmations); default: the widget's.",
    ),
) -> None:
    """Print a token signed like your site would sign it (for testing)."""
    from botctl import identity, workspaces

    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    print(identity.mint(a, ws, sub=sub, email=email, name=name, ttl_s=_parse_duration(ttl, "--ttl"), use=use))
