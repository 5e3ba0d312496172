import typer

from botctl.cli import context, output

app = context.group()


@app.command("serve")
def serve(
    ctx: typer.Context,
    stdio: bool = typer.Option(
        False,
        "--stdio",
        help="Speak MCP on stdin/stdout (the only transport here; the "
        "daemon serves visitors' bots over HTTP).",
    ),
    workspace: str = typer.Option(
        ...,
        "-w",
        "--workspace",
        envvar="BOTCTL_WORKSPACE",
        metavar="NAME",
        autocompletion=context.complete_workspace,
    ),
    as_email: str = typer.Option(
        None, "--as-email", metavar="EMAIL", help="Act for this customer (verified by you)."
    ),
    yes: bool = typer.Option(
        False, "--yes", help="Let the agent make changes without asking on the terminal."
    ),
) -> None:
    """Serve the workspace's actions as MCP tools to a local agent, as the operator (audited, channel mcp)."""
    import asyncio

    from botctl import workspaces
    from botctl.connectors.base import Visitor
    from botctl.errors import UsageError
    from botctl.identity import operator_email
    from botctl.mcp.stdio import serve as serve_stdio

    if not stdio:
        raise UsageError(
            "Say --stdio: this command speaks MCP on stdin/stdout.",
            hint="Visitors' bots use the daemon's endpoint: /v1/workspaces/WS/mcp",
        )
    visitor = Visitor(sub=as_email, email=operator_email(as_email)) if as_email else None
    a = context.app(ctx, create=False)
    workspaces.get(a.vault.conn, workspace)  # an unknown workspace: a clear error before any protocol
    output.status(
        f"botctl mcp: serving {workspace} on stdio"
        + (f" for {as_email}" if as_email else "")
        + ("; changes run without asking (--yes)" if yes else "; changes are asked on this terminal")
    )
    asyncio.run(serve_stdio(a, workspace, visitor, yes=yes))


@app.command("waive")
def waive(
    ctx: typer.Context,
    actions: list[str] = typer.Argument(None, metavar="[CONNECTOR.ACTION]..."),
    workspace: str = typer.Option(
        ...,
        "-w",
        "--workspace",
        envvar="BOTCTL_WORKSPACE",
        metavar="NAME",
        autocompletion=context.complete_workspace,
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Waive none: every change needs the visitor's confirmation."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show or set the actions a visitor's bot may run over MCP without the visitor's confirmation."""
    from botctl import workspaces
    from botctl.connectors import registry
    from botctl.errors import UsageError
    from botctl.mcp.confirmations import set_waived, waived

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, workspace)
    if clear or actions:
        for name in actions or []:
            found = registry.find_action(name)
            if found is None:
                raise UsageError(f"no action named {name!r}.", hint="See `botctl actions list`.")
            if not found[1].is_write:
                raise UsageError(f"{name} changes nothing: it never needs a confirmation.")
        names = set_waived(a, ws, [] if clear else list(actions))
    else:
        names = waived(a.vault.conn, ws)
    if json_out:
        output.emit_json({"workspace": ws.name, "waived": names})
    else:
        output.status(
            f"{ws.name}: "
            + (f"waived for {', '.join(names)}" if names else "every change needs the visitor's confirmation")
        )
