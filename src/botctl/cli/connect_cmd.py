import typer

from botctl.cli import context, output

app = context.group(no_args_is_help=True)

WS = typer.Option(..., "-w", "--workspace", envvar="BOTCTL_WORKSPACE", metavar="NAME", help="Workspace.")


@app.command("connect")
def connect(
    ctx: typer.Context,
    connector_name: str = typer.Argument(..., metavar="CONNECTOR", help="e.g. stripe, zendesk (see `botctl connectors list`)."),
    workspace: str = WS,
    subdomain: str = typer.Option(None, "--subdomain", metavar="NAME", help="Zendesk: acme for acme.zendesk.com."),
    domain: str = typer.Option(None, "--domain", metavar="NAME", help="Freshdesk: acme for acme.freshdesk.com."),
    shop: str = typer.Option(None, "--shop", metavar="NAME", help="Shopify: acme for acme.myshopify.com."),
    site: str = typer.Option(None, "--site", metavar="URL", help="WooCommerce: the store's site URL."),
    base_url: str = typer.Option(None, "--base-url", metavar="URL", help="Cal.com: self-hosted API host."),
    api_key_stdin: bool = typer.Option(False, "--api-key-stdin", help="Read the API key from standard input."),
    api_key_env: str = typer.Option(None, "--api-key-env", metavar="VAR", help="Read the API key from $VAR."),
    api_secret_stdin: bool = typer.Option(False, "--api-secret-stdin", help="WooCommerce: read the consumer secret from stdin."),
    api_secret_env: str = typer.Option(None, "--api-secret-env", metavar="VAR", help="WooCommerce: consumer secret from $VAR."),
    token_stdin: bool = typer.Option(False, "--access-token-stdin", help="OAuth tools: a vendor-issued access token from stdin."),
    token_env: str = typer.Option(None, "--access-token-env", metavar="VAR", help="OAuth tools: access token from $VAR."),
    sandbox: str = typer.Option(None, "--sandbox", metavar="URL", envvar="BOTCTL_SANDBOX",
                                help="Point the connection at a running `botctl sandbox serve` instead of the vendor."),
    json_out: bool = typer.Option(False, "--json", help="Print the connection as JSON."),
) -> None:
    """Connect a tool to a workspace: the credential is checked with the vendor, then stored encrypted.

    The secret never comes from an argument: a hidden prompt, --api-key-stdin, or --api-key-env VAR.
    """
    import asyncio

    from botctl import connections, workspaces
    from botctl.cli import secrets_input
    from botctl.connectors.base import ActionError
    from botctl.errors import UsageError

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    connector = connections.resolve_connector(connector_name)
    if connector.auth == "oauth" and (api_key_stdin or api_key_env):
        raise UsageError(
            f"{connector.vendor} connects with OAuth, not an API key.",
            hint="Pass an access token the vendor issued (e.g. a personal or private-app token) with "
                 "--access-token-stdin or --access-token-env VAR.")
    config = connections.resolve_config(
        connector, {"subdomain": subdomain, "domain": domain, "shop": shop, "site": site, "base_url": base_url}, sandbox)
    secrets_input.reset()
    if connector.auth == "api_key":
        if token_stdin or token_env:
            raise UsageError(f"{connector.vendor} connects with an API key, not an access token.",
                             hint="Use --api-key-stdin or --api-key-env VAR.")
        credential = {"api_key": secrets_input.read(f"{connector.vendor} API key", flag="--api-key",
                                                    from_stdin=api_key_stdin, env_var=api_key_env)}
        if connector.auth_style == "basic_key_secret":
            credential["api_secret"] = secrets_input.read(
                f"{connector.vendor} consumer secret", flag="--api-secret",
                from_stdin=api_secret_stdin or (api_key_stdin and not api_secret_env), env_var=api_secret_env,
                stdin_index=1 if api_key_stdin else 0)
        elif api_secret_stdin or api_secret_env:
            raise UsageError(f"{connector.vendor} takes no API secret.")
    else:
        if not (token_stdin or token_env):
            raise UsageError(
                f"{connector.vendor} connects with OAuth; the browser and device flows are not built yet.",
                hint="Meanwhile pass a vendor-issued access token with --access-token-stdin or --access-token-env VAR.")
        credential = {"access_token": secrets_input.read(f"{connector.vendor} access token", flag="--access-token",
                                                         from_stdin=token_stdin, env_var=token_env)}
    try:
        label = asyncio.run(connections.validate(connector, config, credential))
    except ActionError as exc:
        err = connections.error_for(exc, connector.vendor)
        a.audit("connection.failed", workspace=ws.name, connector=connector.name,
                outcome="denied" if err.exit_code != 22 else "error", reason=err.code,
                detail={"upstream_status": exc.upstream_status, "message": exc.message})
        raise err from None
    conn, replaced = connections.save(a, ws, connector, auth=connector.auth, config=config, credential=credential,
                                      account_label=label)
    if json_out:
        output.emit_json(conn.as_dict())
    else:
        verb = "reconnected" if replaced else "connected"
        output.status(f"{verb} {connector.name} in {ws.name} as {label!r}"
                      + (f" (sandbox {config['sandbox']})" if config.get("sandbox") else ""))


@app.command("disconnect")
def disconnect(
    ctx: typer.Context,
    connector_name: str = typer.Argument(..., metavar="CONNECTOR"),
    workspace: str = WS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Revoke the credential at the vendor where it can be revoked, then delete it here (even if revocation failed)."""
    import asyncio

    from botctl import connections, workspaces
    from botctl.connectors.base import ActionError
    from botctl.errors import UsageError

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    connector = connections.resolve_connector(connector_name)
    conn = connections.get(a.vault.conn, ws, connector.name)
    if not yes:
        raise UsageError(f"this deletes the {connector.name} credential of {ws.name}.",
                         hint=f"Re-run with --yes: botctl disconnect {connector.name} -w {ws.name} --yes")
    revoked: str
    if connector.revoke is None:
        revoked = "unsupported"
    else:
        from botctl.connectors.http import build_client

        credential = connections.credential(a, ws, conn)

        async def _revoke() -> None:
            async with build_client(connector, conn.config, credential, base_url=conn.base_url) as client:
                await connector.revoke(client, conn.config)  # type: ignore[misc]

        try:
            asyncio.run(_revoke())
            revoked = "yes"
        except ActionError as exc:
            revoked = f"failed: {exc.code}"
    connections.delete(a, ws, conn, detail={"revoked": revoked})
    result = {"workspace": ws.name, "connector": connector.name, "deleted": True, "revoked": revoked}
    if json_out:
        output.emit_json(result)
        return
    output.status(f"disconnected {connector.name} from {ws.name}; the stored credential is deleted")
    if revoked.startswith("failed"):
        output.warn(f"revoking at {connector.vendor} failed ({revoked[8:]}); revoke it in the vendor's admin too")
    elif revoked == "unsupported":
        output.status(f"{connector.vendor} has no revocation endpoint for this credential: revoke it in the vendor's admin")
