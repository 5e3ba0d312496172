import typer

from botctl.cli import context

app = context.group(no_args_is_help=False)


@app.command("demo")
def demo(
    keep: bool = typer.Option(False, "--keep", help="Leave the daemon and the sandbox running afterwards."),
    port: int = typer.Option(None, "--port", metavar="PORT", help="Edge port (default: a free one)."),
) -> None:
    """The whole product in one command: sandbox vendors, a workspace, the daemon, a scripted visitor session."""
    from botctl import demo as demo_mod

    code = demo_mod.run(keep=keep, port=port)
    if code:
        raise typer.Exit(code)
