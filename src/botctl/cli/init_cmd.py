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
    database: str = typer.Option(
        None, "--database", metavar="postgresql://USER@HOST:PORT/DB",
        help="Keep this home's tables in PostgreSQL instead of SQLite files (no password in the URL: "
             "?passfile=PATH, PGPASSFILE, ~/.pgpass or ?credential=NAME).",
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
    if database is not None:
        _choose_database(home, database)
    app = context.app(ctx)
    app._key_store = key_store
    vault = app.vault
    created = not existed or app.initialized_now
    result = {"home": str(home.path), "created": created, "master_key_source": vault.master.source,
              "master_key_location": vault.master.location, "database": vault.database()}
    if json_out:
        output.emit_json(result)
    elif created:
        db = result["database"]
        output.status(f"initialised {home.path} (master key: {vault.master.source}, {vault.master.location}; "
                      f"database: {db['backend']} {db['location']})")
    else:
        output.status(f"already initialised: {home.path} (master key: {vault.master.source}); nothing changed")


def _choose_database(home, url: str) -> None:  # noqa: ANN001
    """Record the home's PostgreSQL URL (checked, no password) before anything is created in it."""
    from botctl import database
    from botctl.errors import UsageError

    database.check(url, stored=True)
    if home.vault_db.exists():
        raise UsageError(f"{home.path} already keeps its tables in SQLite ({home.vault_db}).",
                         hint="Move them with `botctl db copy --to URL --switch`.")
    current = database.configured(home.path)
    if current is not None and current != url:
        raise UsageError(f"{home.path} already uses the database {database.redacted(current)}.",
                         hint="Use another --home for another database, or `botctl db copy` to move this one.")
    home.ensure()
    if not home.database_url_file.exists():
        database.save(home.path, url)
