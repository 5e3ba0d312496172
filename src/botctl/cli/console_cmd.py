import typer

from botctl.cli import context, output

app = context.group(no_args_is_help=False)


@app.command("console")
def console(
    ctx: typer.Context,
    port: int = typer.Option(
        0, "--port", min=0, max=65535, metavar="PORT", help="Port on 127.0.0.1 (default: a free one)."
    ),
    no_browser: bool = typer.Option(
        False,
        "--no-browser",
        help="Print the one-time link instead of opening a browser (e.g. over an SSH tunnel).",
    ),
) -> None:
    """A read-only web console on 127.0.0.1: audit timeline, connections, activity. Stops with Ctrl-C."""
    from botctl.console.server import serve

    home = context.home(ctx)
    if not home.exists():
        from botctl.errors import NotFound

        raise NotFound(
            f"no botctl home at {home.path}.",
            hint="Run `botctl init` first (or give --home).",
            code="no_home",
        )
    if not no_browser:
        output.status("botctl console: read-only; Ctrl-C stops it")
    try:
        serve(home, port=port, open_browser=not no_browser)
    except KeyboardInterrupt:
        return
