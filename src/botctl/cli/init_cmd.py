import typer

from botctl.cli import context, output

app = context.group(no_args_is_help=False)


@app.command("init")
def init(
    ctx: typer.Context,
    key_store: str = typer.Option(
        "auto",
        "--key-store",
        metavar="auto|keyring|file",
        help="Where a new master key goes: the OS keyring when usable (auto), or a 0600 file.",
    ),
    database: str = typer.Option(
        None,
        "--database",
        metavar="postgresql://USER@HOST:PORT/DB",
        help="Keep this home's tables in PostgreSQL instead of SQLite files (no password in the URL: "
        "?passfile=PATH, PGPASSFILE, ~/.pgpass or ?credential=NAME).",
    ),
    node: str = typer.Option(
        None,
        "--node",
        metavar="NAME",
        help="This machine's node name when several share the PostgreSQL database (default: the host name).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create the home and its master key (or join an existing PostgreSQL database with its master key);
    re-running on an initialised home changes nothing."""
    from botctl.errors import UsageError

    output.use_json(json_out)
    if key_store not in ("auto", "keyring", "file"):
        raise UsageError(f"unknown --key-store {key_store!r}.", hint="Use auto, keyring or file.")
    home = context.home(ctx)
    existed = home.exists()
    written = _choose_database(home, database, node) if database is not None or node is not None else []
    app = context.app(ctx)
    app._key_store = key_store
    try:
        vault = app.vault
    except BaseException:
        _undo(home, written, existed)  # a wrong master key (exit 5) or no server: this home stays as it was
        raise
    created = not existed or app.initialized_now
    joined = created and not app.initialized_now and vault.database()["backend"] == "postgresql"
    result = {
        "home": str(home.path),
        "created": created,
        "joined": joined,
        "node": app.node,
        "master_key_source": vault.master.source,
        "master_key_location": vault.master.location,
        "database": vault.database(),
    }
    if json_out:
        output.emit_json(result)
    elif joined:
        db = result["database"]
        output.status(
            f"joined {db['location']} as node {app.node} (its master key opens it: "
            f"{vault.master.source}, {vault.master.location})"
        )
    elif created:
        db = result["database"]
        output.status(
            f"initialised {home.path} (master key: {vault.master.source}, {vault.master.location}; "
            f"database: {db['backend']} {db['location']})"
        )
    elif written:  # an existing PostgreSQL home (e.g. after `db copy --switch`) named as a node
        output.status(f"already initialised: {home.path}; this home is now node {app.node}")
    else:
        output.status(
            f"already initialised: {home.path} (master key: {vault.master.source}); nothing changed"
        )


def _choose_database(home, url: str | None, node: str | None) -> list:  # noqa: ANN001
    """Record the home's PostgreSQL URL (checked, no password) and node name before anything is created in
    it; returns the files written (removed again should the master key not open the database)."""
    from botctl import database, nodes
    from botctl.errors import UsageError

    if node is not None:
        nodes.check_name(node)
        if url is None and database.configured(home.path) is None:
            raise UsageError(
                "--node names a machine sharing a PostgreSQL database, and this home uses SQLite.",
                hint="Give --database postgresql://USER@HOST:PORT/DB as well.",
            )
    written = []
    if url is None:
        return _save_node(home, node, written)
    database.check(url, stored=True)
    if home.vault_db.exists():
        raise UsageError(
            f"{home.path} already keeps its tables in SQLite ({home.vault_db}).",
            hint="Move them with `botctl db copy --to URL --switch`.",
        )
    current = database.configured(home.path)
    if current is not None and current != url:
        raise UsageError(
            f"{home.path} already uses the database {database.redacted(current)}.",
            hint="Use another --home for another database, or `botctl db copy` to move this one.",
        )
    home.ensure()
    if not home.database_url_file.exists():
        database.save(home.path, url)
        written.append(home.database_url_file)
    return _save_node(home, node, written)


def _save_node(home, node: str | None, written: list) -> list:  # noqa: ANN001
    from botctl import nodes
    from botctl.errors import UsageError

    path = home.path / nodes.NODE_FILE
    if node is None:
        return written
    if path.exists():
        if path.read_text().strip() != node:
            raise UsageError(
                f"{home.path} is already node {path.read_text().strip()!r}.",
                hint="A node keeps its name; use another --home for another node.",
            )
        return written
    home.ensure()
    nodes.save(home.path, node)
    written.append(path)
    return written


def _undo(home, written: list, existed: bool) -> None:  # noqa: ANN001
    for path in written:
        path.unlink(missing_ok=True)
    if not existed and home.path.is_dir() and not any(home.path.iterdir()):
        home.path.rmdir()
