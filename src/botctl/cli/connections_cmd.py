import typer

from botctl.cli import context, output

app = context.group()


@app.command("list")
def list_(
    ctx: typer.Context,
    workspace: str = typer.Option(
        None,
        "-w",
        "--workspace",
        envvar="BOTCTL_WORKSPACE",
        metavar="NAME",
        autocompletion=context.complete_workspace,
        help="Only this workspace.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Connections with their status, account, and when they were created, last used and expire."""
    from botctl import connections, workspaces
    from botctl.vault import Vault

    output.use_json(json_out)
    vault = Vault.open_readonly(context.home(ctx))
    items = []
    if vault is not None:
        with vault:
            ws = workspaces.get(vault.conn, workspace) if workspace else None
            items = connections.list_all(vault.conn, ws)
    elif workspace:
        from botctl.errors import NotFound

        raise NotFound(f"no workspace named {workspace!r}.", code="unknown_workspace")
    if json_out:
        output.emit_json([c.as_dict() for c in items])
        return
    output.table(
        ["WORKSPACE", "CONNECTOR", "AUTH", "STATUS", "ACCOUNT", "CREATED", "LAST USED", "EXPIRES"],
        [
            (
                c.workspace,
                c.connector,
                c.auth,
                c.status,
                c.account_label,
                c.created_at[:16].replace("T", " "),
                (c.last_used_at or "")[:16].replace("T", " ") or None,
                c.expires_at,
            )
            for c in items
        ],
        empty="no connections yet; add one with `botctl connect CONNECTOR -w WORKSPACE`",
    )
    for c in items:
        if c.status != "active":
            output.warn(
                f"{c.connector} in {c.workspace} is {c.status} ({c.status_reason or 'no reason recorded'}); "
                f"reconnect: {c.reconnect_command()}"
            )


@app.command("test")
def test(
    ctx: typer.Context,
    connector_name: str = typer.Argument(..., metavar="CONNECTOR", autocompletion=context.complete_connector),
    workspace: str = typer.Option(
        ...,
        "-w",
        "--workspace",
        envvar="BOTCTL_WORKSPACE",
        metavar="NAME",
        autocompletion=context.complete_workspace,
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check the stored credential with the vendor again.

    Exit 0 ok; 20 rejected by the vendor (now needs_reauth); 21 needs re-authorisation; 22 transient.
    """
    import asyncio

    from botctl import connections, workspaces
    from botctl.connectors.base import ActionError
    from botctl.errors import NeedsReauth

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    connector = connections.resolve_connector(connector_name)
    conn = connections.get(a.vault.conn, ws, connector.name)
    credential = connections.credential(a, ws, conn)
    if "access_token" not in credential and "api_key" not in credential:
        a.audit(
            "connection.tested",
            workspace=ws.name,
            connector=connector.name,
            outcome="error",
            reason="needs_reauth",
            detail={"message": "no usable credential stored"},
        )
        raise NeedsReauth(
            f"{connector.name} in {ws.name} has no usable credential.",
            hint=f"Reconnect: botctl connect {connector.name} -w {ws.name}",
        )

    async def check():
        from botctl import oauth

        current = await oauth.ensure_fresh(a, ws, conn)  # an expired OAuth token is refreshed, not failed
        cred = connections.credential(a, ws, current) if current is not conn else credential
        return await connections.validate(connector, current.config, cred)

    from botctl.errors import EXIT_REJECTED

    try:
        label = asyncio.run(check())
    except ActionError as exc:
        err = connections.error_for(exc, connector.vendor)
        detail = {"upstream_status": exc.upstream_status, "message": exc.message}
        if err.exit_code == EXIT_REJECTED:
            connections.set_status(a, conn, "needs_reauth", f"credential rejected by {connector.vendor}")
            detail["connection_status"] = "needs_reauth"  # the needs_reauth alert keys on this
        a.audit(
            "connection.tested",
            workspace=ws.name,
            connector=connector.name,
            outcome="error",
            reason=err.code,
            detail=detail,
        )
        raise err from None
    if conn.status != "active" or conn.account_label != label:
        a.vault.conn.execute("UPDATE connections SET account_label = ? WHERE id = ?", (label, conn.id))
        connections.set_status(a, conn, "active", None)
    a.audit("connection.tested", workspace=ws.name, connector=connector.name, detail={"account": label})
    if json_out:
        output.emit_json({"workspace": ws.name, "connector": connector.name, "ok": True, "account": label})
    else:
        output.status(f"{connector.name} in {ws.name}: ok ({label})")


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    connector_name: str = typer.Argument(..., metavar="CONNECTOR", autocompletion=context.complete_connector),
    workspace: str = typer.Option(
        ...,
        "-w",
        "--workspace",
        envvar="BOTCTL_WORKSPACE",
        metavar="NAME",
        autocompletion=context.complete_workspace,
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the connection as JSON."),
) -> None:
    """Refresh an OAuth connection's access token now (single-flight with any refresh under way).

    Exit 0 ok; 20 the OAuth client was refused; 21 the grant is gone (now needs_reauth: reconnect);
    22 transient (the connection stays usable while its token is valid).
    """
    import asyncio

    from botctl import connections, oauth, workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    connector = connections.resolve_connector(connector_name)
    conn = connections.get(a.vault.conn, ws, connector.name)
    conn = asyncio.run(oauth.refresh(a, ws, conn, force=True))
    if json_out:
        output.emit_json(conn.as_dict())
    else:
        until = f"; the new token expires at {conn.expires_at}" if conn.expires_at else ""
        output.status(f"refreshed {connector.name} in {ws.name}{until}")
