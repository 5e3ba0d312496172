import typer

from botctl.cli import context, output

app = context.group(no_args_is_help=False)


@app.command("init")
def init(
    ctx: typer.Context,
    key_store: str = typer.Option(
        "auto", "--key-store", metavar="auto|keyring|file",
        help="Where a new master key goes: the OS keyring when usable (auto), or a 0600 file.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create the home and its master key; re-running on an initialised home changes nothing."""
    from botctl.errors import UsageError

    output.use_json(json_out)
    if key_store not in ("auto", "keyring", "file"):
        raise UsageError(f"unknown --key-store {key_store!r}.", hint="Use auto, keyring or file.")
    home = context.home(ctx)
    existed = home.exists()
    app = context.app(ctx)
    app._key_store = key_store
    vault = app.vault
    created = not existed
    result = {"home": str(home.path), "created": created, "master_key_source": vault.master.source,
              "master_key_location": vault.master.location}
    if json_out:
        output.emit_json(result)
    elif created:
        output.status(f"initialised {home.path} (master key: {vault.master.source}, {vault.master.location})")
    else:
        output.status(f"already initialised: {home.path} (master key: {vault.master.source}); nothing changed")
