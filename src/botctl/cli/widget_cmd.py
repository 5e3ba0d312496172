"""`botctl widget`: how the workspace's chat widget looks and where it sends visitors who want a person.

Exit codes: 0 ok, 2 a value that is not valid (nothing is changed), 3 unknown workspace.
"""

import typer

from botctl.cli import context, output

app = context.group(help="The widget's look (accent colour, logo, language) and how visitors reach support.")
WS = typer.Option(
    ...,
    "-w",
    "--workspace",
    envvar="BOTCTL_WORKSPACE",
    metavar="NAME",
    autocompletion=context.complete_workspace,
    help="Workspace.",
)
JSON = typer.Option(False, "--json", help="Print as JSON.")


def _print(settings: dict[str, str], json_out: bool) -> None:
    from botctl.widget_settings import FIELDS

    if json_out:
        output.emit_json(settings)
        return
    output.fields([(k.replace("_", " "), settings.get(k, "(not set)")) for k in FIELDS])


@app.command("show")
def show(ctx: typer.Context, workspace: str = WS, json_out: bool = JSON) -> None:
    """The widget settings visitors get (in widget-config)."""
    from botctl import widget_settings, workspaces
    from botctl.errors import NotFound
    from botctl.vault import Vault

    output.use_json(json_out)
    vault = Vault.open_readonly(context.home(ctx))
    if vault is None:
        raise NotFound(
            f"no workspace named {workspace!r}.",
            hint="See `botctl workspace list`.",
            code="unknown_workspace",
        )
    ctx.call_on_close(vault.close)
    _print(widget_settings.get(vault.conn, workspaces.get(vault.conn, workspace)), json_out)


@app.command("set")
def set_(
    ctx: typer.Context,
    workspace: str = WS,
    accent: str = typer.Option(None, "--accent", metavar="#RRGGBB", help="The site's accent colour (hex)."),
    logo: str = typer.Option(
        None,
        "--logo",
        metavar="URL",
        help="Logo in the widget's header: an https:// URL or a path on your site (/logo.svg).",
    ),
    locale: str = typer.Option(
        None, "--locale", metavar="LANG", help="Language when the tag has no data-locale: en | fr."
    ),
    support_contact: str = typer.Option(
        None,
        "--support-contact",
        metavar="TEXT",
        help="How visitors reach support when no help desk is connected.",
    ),
    clear: list[str] = typer.Option(
        [],
        "--clear",
        metavar="SETTING",
        help="Unset a setting: accent, logo, locale or support_contact (repeatable).",
    ),
    json_out: bool = JSON,
) -> None:
    """Change widget settings; the others stay as they are. Every value is checked before anything is saved."""
    from botctl import widget_settings, workspaces
    from botctl.errors import UsageError

    output.use_json(json_out)
    changes: dict[str, str | None] = {
        k: v
        for k, v in (
            ("accent", accent),
            ("logo", logo),
            ("locale", locale),
            ("support_contact", support_contact),
        )
        if v is not None
    }
    for name in clear:
        key = name.replace("-", "_")
        if key not in widget_settings.FIELDS:
            raise UsageError(
                f"--clear {name}: no such setting.",
                hint=f"Settings: {', '.join(widget_settings.FIELDS)}.",
                code="invalid_widget_setting",
            )
        if key in changes:
            raise UsageError(
                f"--clear {name} and --{name.replace('_', '-')} together.",
                hint="Give one of them.",
                code="invalid_widget_setting",
            )
        changes[key] = None
    if not changes:
        raise UsageError(
            "nothing to change.", hint="Give --accent, --logo, --locale, --support-contact or --clear."
        )
    a = context.app(ctx, create=False)
    settings = widget_settings.update(a, workspaces.get(a.vault.conn, workspace), changes)
    if json_out:
        output.emit_json(settings)
    else:
        output.status(f"{workspace}: widget settings saved")
