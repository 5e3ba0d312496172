import typer

from botctl.cli import context, output

app = context.group()
WS = typer.Option(..., "-w", "--workspace", envvar="BOTCTL_WORKSPACE", metavar="NAME", autocompletion=context.complete_workspace, help="Workspace.")


def _parse_duration(text: str, flag: str) -> int:
    from botctl.identity import parse_duration

    return parse_duration(text, flag)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    workspace: str = WS,
    overlap: str = typer.Option("24h", "--overlap", metavar="DURATION", help="How long the previous secret stays valid."),
    expire_previous: bool = typer.Option(False, "--expire-previous", help="End the previous secrets now."),
    json_out: bool = typer.Option(False, "--json", help='Print {"kid", "alg", "secret"} as JSON.'),
) -> None:
    """New HS256 signing secret for your site's backend (shown once; previous one overlaps)."""
    from botctl import identity, workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    key, secret = identity.rotate(a, ws, overlap_s=_parse_duration(overlap, "--overlap"), expire_previous=expire_previous)
    if json_out:
        output.emit_json({"kid": key.kid, "alg": key.alg, "secret": secret.reveal()})
        return
    output.status(f"new HS256 secret for {ws.name}, kid {key.kid}. It is shown once; store it in your site's backend:")
    print(secret.reveal())
    output.status("Sign tokens with it (HS256, header kid, claims sub, email, name, aud=" + ws.name + ", iat, exp).")


@app.command("add-key")
def add_key(
    ctx: typer.Context,
    workspace: str = WS,
    public_key: str = typer.Option(None, "--public-key", metavar="FILE", help="PEM public key file."),
    jwks_url: str = typer.Option(None, "--jwks-url", metavar="URL", help="Your site's JWKS (https; pinned)."),
    alg: str = typer.Option(..., "--alg", metavar="ALG", help="RS256 | ES256 | EdDSA"),
    kid: str = typer.Option(None, "--kid", metavar="KID", help="Key id your tokens carry (default: generated)."),
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
def list_(ctx: typer.Context, workspace: str = WS, json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
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
        issuer, max_lifetime = identity.settings(vault.conn, ws)
    if json_out:
        output.emit_json({"workspace": ws.name, "issuer": issuer, "max_lifetime_s": max_lifetime,
                          "keys": [k.as_dict() for k in keys]})
        return
    output.table(["KID", "ALG", "KIND", "CREATED", "VALID UNTIL"],
                 [(k.kid, k.alg, k.kind, k.created_at[:19], k.expires_at[:19] if k.expires_at else "-") for k in keys],
                 empty=f"no identity keys; create one with `botctl identity rotate -w {ws.name}`")


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
) -> None:
    """Print a token signed like your site would sign it (for testing)."""
    from botctl import identity, workspaces

    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    print(identity.mint(a, ws, sub=sub, email=email, name=name, ttl_s=_parse_duration(ttl, "--ttl")))
