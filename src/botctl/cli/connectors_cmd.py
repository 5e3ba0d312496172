import typer

from botctl.cli import context, output

app = context.group()


def _describe(c) -> dict:  # noqa: ANN001
    return {
        "name": c.name,
        "vendor": c.vendor,
        "category": c.category,
        "auth": c.auth,
        "scopes": list(c.scopes),
        "base_url": c.base_url,
        "settings": list(c.config_fields),
        "setting_details": [
            {"name": f.name, "kind": f.kind, "help": f.help, "default": f.default, "flag": f.alias}
            for f in c.config
        ],
        "docs": c.docs_url or None,
        "actions": [
            {
                "name": f"{c.name}.{a.name}",
                "description": a.description,
                "customer_specific": a.customer_specific,
                "idempotent": a.idempotent,
                "scopes": list(a.scopes),
                "params": a.params,
            }
            for a in c.actions
        ],
    }


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """The tools botctl can connect: category, how they authenticate, their actions."""
    from botctl.connectors import registry

    output.use_json(json_out)
    items = [_describe(c) for c in registry.all_connectors()]
    if json_out:
        output.emit_json(items)
        return
    output.table(
        ["NAME", "VENDOR", "CATEGORY", "AUTH", "BASE URL", "ACTIONS"],
        [(i["name"], i["vendor"], i["category"], i["auth"], i["base_url"], len(i["actions"])) for i in items],
    )


@app.command("show")
def show(
    name: str = typer.Argument(..., metavar="NAME"),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """One connector in full: auth method (shown before you connect), scopes, base URL, actions."""
    from botctl import connections

    output.use_json(json_out)
    info = _describe(connections.resolve_connector(name))
    if json_out:
        output.emit_json(info)
        return
    flags = " ".join(
        f"{f['flag']} {'URL' if f['kind'] == 'url' else 'NAME'}" if f["flag"] else f"--config {f['name']}=..."
        for f in info["setting_details"]
        if f["default"] is None
    )
    how = (
        "OAuth (vendor-issued access token for now: --access-token-stdin)"
        if info["auth"] == "oauth"
        else "API key (hidden prompt, --api-key-stdin or --api-key-env VAR)"
    )
    output.fields(
        [
            ("name", info["name"]),
            ("vendor", info["vendor"]),
            ("category", info["category"]),
            ("auth", how),
            ("scopes", info["scopes"]),
            ("base url", info["base_url"]),
            *[
                (f"setting {f['name']}", f["help"] + (f" (default {f['default']})" if f["default"] else ""))
                for f in info["setting_details"]
            ],
            ("connect with", f"botctl connect {info['name']} -w WORKSPACE {flags}".strip()),
            ("docs", info["docs"]),
        ]
    )
    output.table(
        ["ACTION", "CUSTOMER-SPECIFIC", "IDEMPOTENT", "DESCRIPTION"],
        [
            (
                a["name"],
                "yes" if a["customer_specific"] else "no",
                "yes" if a["idempotent"] else "no",
                a["description"],
            )
            for a in info["actions"]
        ],
    )
