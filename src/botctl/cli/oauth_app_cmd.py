import typer

from botctl.cli import context, output

app = context.group()

WS = typer.Option(
    None,
    "-w",
    "--workspace",
    metavar="NAME",
    help="Set it for this workspace only (default: the global app every workspace uses).",
)


@app.command("set")
def set_(
    ctx: typer.Context,
    connector_name: str = typer.Argument(
        ...,
        metavar="CONNECTOR",
        autocompletion=context.complete_connector,
        help="calendly, zendesk, hubspot or shopify.",
    ),
    client_id: str = typer.Option(..., "--client-id", metavar="ID", help="The app's client id (not secret)."),
    secret_stdin: bool = typer.Option(
        False, "--client-secret-stdin", help="Read the client secret from stdin."
    ),
    secret_env: str = typer.Option(
        None, "--client-secret-env", metavar="VAR", help="Read the client secret from $VAR."
    ),
    workspace: str = WS,
    authorize_url: str = typer.Option(
        None,
        "--authorize-url",
        metavar="URL",
        help="Override the authorize endpoint ({subdomain}/{shop} are filled in).",
    ),
    token_url: str = typer.Option(None, "--token-url", metavar="URL", help="Override the token endpoint."),
    revoke_url: str = typer.Option(
        None, "--revoke-url", metavar="URL", help="An RFC 7009 revocation endpoint."
    ),
    device_url: str = typer.Option(None, "--device-url", metavar="URL", help="An RFC 8628 device endpoint."),
    metadata_url: str = typer.Option(None, "--metadata-url", metavar="URL", help="RFC 8414 server metadata."),
    redirect_uri: str = typer.Option(
        None,
        "--redirect-uri",
        metavar="URI",
        help="The exact loopback redirect URI registered with the vendor.",
    ),
    redirect_port: int = typer.Option(
        None, "--redirect-port", metavar="N", help="Shorthand for --redirect-uri http://127.0.0.1:N/callback."
    ),
    token_auth: str = typer.Option(
        None,
        "--token-auth",
        metavar="METHOD",
        help="client_secret_post, client_secret_basic or none (default: the vendor's).",
    ),
    scopes: str = typer.Option(
        None, "--scopes", metavar='"A B"', help="Scopes to request (default: the connector's)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the app as JSON."),
) -> None:
    """Register your own OAuth app for a vendor; the client secret is stored encrypted.

    The secret never comes from an argument: a hidden prompt, --client-secret-stdin or
    --client-secret-env VAR. --token-auth none registers a public client (PKCE, no secret).
    """
    from botctl import connections, oauth, workspaces
    from botctl.cli import secrets_input
    from botctl.errors import UsageError
    from botctl.oauth import apps as oauth_apps

    output.use_json(json_out)
    connector = connections.resolve_connector(connector_name)
    oauth.vendor(connector.name)
    if redirect_uri and redirect_port:
        raise UsageError("give --redirect-uri or --redirect-port, not both.")
    if redirect_port is not None:
        if not 1 <= redirect_port <= 65535:
            raise UsageError(f"--redirect-port must be 1-65535, not {redirect_port}.")
        redirect_uri = f"http://127.0.0.1:{redirect_port}{oauth.DEFAULT_REDIRECT_PATH}"
    secret = None
    if token_auth != "none":
        secrets_input.reset()
        secret = secrets_input.read(
            f"{connector.vendor} OAuth client secret",
            flag="--client-secret",
            from_stdin=secret_stdin,
            env_var=secret_env,
        )
    elif secret_stdin or secret_env:
        raise UsageError("--token-auth none is for public clients: give no client secret with it.")
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace) if workspace else None
    stored, replaced = oauth_apps.set_app(
        a,
        connector,
        ws=ws,
        client_id=client_id,
        client_secret=secret,
        settings={
            "authorize_url": authorize_url,
            "token_url": token_url,
            "revoke_url": revoke_url,
            "device_url": device_url,
            "metadata_url": metadata_url,
            "redirect_uri": redirect_uri,
            "token_auth": token_auth,
            "scopes": scopes,
        },
    )
    if json_out:
        output.emit_json(stored.as_dict())
        return
    where = f"workspace {ws.name}" if ws else "every workspace (global default)"
    output.status(
        f"{'replaced' if replaced else 'set'} the {connector.vendor} OAuth app for {where}; "
        f"client secret {'stored encrypted' if secret else 'none (public client)'}"
    )
    shown = stored.as_dict()
    output.status(f"redirect URI to register with {connector.vendor}: {shown['redirect_uri']}")


@app.command("list")
def list_(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """The OAuth apps: global defaults and per-workspace overrides (never the secrets)."""
    from botctl.oauth import apps as oauth_apps
    from botctl.vault import Vault

    output.use_json(json_out)
    vault = Vault.open_readonly(context.home(ctx))
    items = []
    if vault is not None:
        with vault:
            items = [s.as_dict() for s in oauth_apps.list_all(vault.conn)]
    if json_out:
        output.emit_json(items)
        return
    output.table(
        ["CONNECTOR", "SCOPE", "CLIENT ID", "SECRET", "TOKEN AUTH", "REDIRECT URI", "OVERRIDES"],
        [
            (
                i["connector"],
                i["scope"],
                i["client_id"],
                i["client_secret"],
                i["token_auth"],
                i["redirect_uri"],
                i["overrides"],
            )
            for i in items
        ],
        empty="no OAuth apps yet; add one with `botctl oauth-app set CONNECTOR --client-id ID "
        "--client-secret-stdin`",
    )


@app.command("remove")
def remove(
    ctx: typer.Context,
    connector_name: str = typer.Argument(..., metavar="CONNECTOR", autocompletion=context.complete_connector),
    workspace: str = typer.Option(
        None,
        "-w",
        "--workspace",
        metavar="NAME",
        help="Remove this workspace's override (default: the global app).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove an OAuth app and its encrypted secret. Existing connections keep working (they keep
    a copy of the client they were made with) until they need re-authorising."""
    from botctl import connections, workspaces
    from botctl.oauth import apps as oauth_apps

    output.use_json(json_out)
    connector = connections.resolve_connector(connector_name)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace) if workspace else None
    removed = oauth_apps.remove(a, connector.name, ws)
    if json_out:
        output.emit_json(
            {"connector": connector.name, "scope": removed.workspace or "global", "removed": True}
        )
    else:
        output.status(f"removed the {connector.vendor} OAuth app ({removed.workspace or 'global'})")
