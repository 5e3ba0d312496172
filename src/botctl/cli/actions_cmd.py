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
        help="Show which actions this workspace can run, and why not.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Every action; with -w, whether the workspace can run it (plan, connection)."""
    from botctl.connectors import registry

    output.use_json(json_out)
    if workspace:
        from botctl import workspaces
        from botctl.actions import catalogue
        from botctl.errors import NotFound
        from botctl.vault import Vault

        vault = Vault.open_readonly(context.home(ctx))
        if vault is None:
            raise NotFound(f"no workspace named {workspace!r}.", code="unknown_workspace")
        with vault:
            items = catalogue(vault.conn, workspaces.get(vault.conn, workspace))
    else:
        items = [
            {
                "name": f"{c.name}.{a.name}",
                "connector": c.name,
                "vendor": c.vendor,
                "category": c.category,
                "description": a.description,
                "customer_specific": a.customer_specific,
                "idempotent": a.idempotent,
                "scopes": list(a.scopes),
                "params": a.params,
            }
            for c in registry.all_connectors()
            for a in c.actions
        ]
    keep = (
        "name",
        "connector",
        "description",
        "customer_specific",
        "idempotent",
        "scopes",
        "params",
        "status",
    )
    items = [{k: i[k] for k in keep if k in i} for i in items]
    if json_out:
        output.emit_json(items)
        return
    # Cells that say what they mean, so a tab-separated line reads without its header (--header adds one).
    cols = ["ACTION", "FOR", "RETRY"] + (["STATUS"] if workspace else []) + ["DESCRIPTION"]
    output.table(
        cols,
        [
            [
                i["name"],
                "customer" if i["customer_specific"] else "anyone",
                "idempotent" if i["idempotent"] else "not-idempotent",
            ]
            + ([i["status"]] if workspace else [])
            + [i["description"]]
            for i in items
        ],
    )


@app.command("run")
def run(
    ctx: typer.Context,
    action: str = typer.Argument(..., metavar="CONNECTOR.ACTION", autocompletion=context.complete_action),
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
    as_sub: str = typer.Option(
        None, "--as-sub", metavar="ID", help="The customer's id at your site (default: the email)."
    ),
    as_name: str = typer.Option(None, "--as-name", metavar="NAME", help="The customer's name."),
    params: str = typer.Option(
        "{}", "--params", metavar="JSON", help='Action parameters, e.g. \'{"order_id": "1001"}\'.'
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Run an action as the operator, for a customer you name. Audited with actor type operator."""
    import asyncio
    import json

    from botctl.actions import run_action
    from botctl.connectors.base import ActionError, Visitor
    from botctl.errors import ActionFailed, UsageError
    from botctl.identity import operator_email

    output.use_json(json_out)
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--params is not valid JSON ({exc.msg} at column {exc.colno}).",
            hint='Quote it for your shell: --params \'{"key": "value"}\'',
        ) from None
    visitor = (
        Visitor(sub=as_sub or as_email, email=operator_email(as_email), name=as_name) if as_email else None
    )
    if as_sub and not as_email:
        raise UsageError("--as-sub needs --as-email.")
    a = context.app(ctx, create=False)

    async def go() -> dict:
        from botctl import intents

        await intents.recover(a)  # writes an earlier, killed process left without an outcome
        return await run_action(a, workspace, action, visitor=visitor, params=parsed, actor=a.actor)

    try:
        result = asyncio.run(go())
    except ActionError as exc:
        hint = {
            "not_connected": f"Connect it: botctl connect {action.split('.')[0]} -w {workspace}",
            "plan_required": f"Upgrade: botctl workspace set-plan {workspace} pro",
            "identity_required": "Name the customer with --as-email.",
            "unknown_action": _unknown_action_hint(action),
            "needs_reauth": f"Reconnect: botctl connect {action.split('.')[0]} -w {workspace}",
            "unknown_workspace": "See `botctl workspace list`.",
            "outcome_unknown": "Check at the vendor whether it was applied before running it again.",
        }.get(exc.code)
        raise ActionFailed(f"{exc.code}: {exc.message}", hint=hint, code=exc.code) from None
    if json_out:
        output.emit_json(result)
    else:
        output.status(f"{action}: ok (request {result['request_id']})")
        output.emit_json(result["result"])


def _unknown_action_hint(action: str) -> str:
    from botctl.connectors import registry
    from botctl.suggest import hint

    return hint(
        action,
        [f"{c.name}.{a.name}" for c in registry.all_connectors() for a in c.actions],
        "See `botctl actions list`.",
    )
