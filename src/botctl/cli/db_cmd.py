import typer

from botctl.cli import context, output

app = context.group()


@app.callback()
def db() -> None:
    """Where the tables live (SQLite or PostgreSQL): copy a home to another database."""


@app.command("copy")
def copy(
    ctx: typer.Context,
    to: str = typer.Option(
        ...,
        "--to",
        metavar="postgresql://…|sqlite:PATH",
        help="An empty PostgreSQL database, or a folder for vault.db and audit.db "
        "(`sqlite:` alone: this home).",
    ),
    switch: bool = typer.Option(
        False,
        "--switch",
        help="Then use the copy: this home's commands and daemon read and write it from now on.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Copy every table of this home, audit chain byte for byte, into another database in one transaction.

    The target must be empty. The source is read under its write lock (stop the daemon first: its writes
    wait meanwhile). With --switch, the home then uses the target; SQLite files left behind are renamed
    *.copied (they still hold every wrapped key: delete them once `botctl audit verify` passes).
    """
    from botctl import dbcopy

    output.use_json(json_out)
    home = context.home(ctx)
    if not home.exists():
        from botctl.errors import BotctlError

        raise BotctlError(
            f"no botctl home at {home.path}.", hint="Run `botctl init` first.", code="not_initialised"
        )
    from botctl.session import Session

    with Session(
        home, create=False
    ) as check:  # the master key opens this vault: else stop before copying anything
        check.vault.audit_key()
    result = dbcopy.copy(home, to, switch=switch)
    if switch:
        a = context.app(ctx, create=False)
        a.audit(
            "database.switched",
            detail={"to": result["to"], "backend": result["backend"], "records_copied": result["records"]},
        )
    else:
        a = context.app(ctx, create=False)
        a.audit(
            "database.copied",
            detail={"to": result["to"], "backend": result["backend"], "records_copied": result["records"]},
        )
    if json_out:
        output.emit_json(result)
        return
    rows = sum(result["tables"].values())
    output.status(
        f"copied {rows} rows ({result['records']} audit records) to {result['to']}"
        + ("; this home now uses it" if switch else "")
    )
    if switch and result["backend"] == "postgresql":
        output.status(
            "the SQLite files are kept as vault.db.copied and audit.db.copied: delete them once "
            "`botctl audit verify` passes (they still hold every wrapped key)"
        )
