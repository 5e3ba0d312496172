import typer

from botctl.cli import context, output

app = context.group(invoke_without_command=True, no_args_is_help=False)

JSON = typer.Option(False, "--json", help="One JSON object per line (NDJSON).")
COLUMNS = ["SEQ", "TIME (UTC)", "WORKSPACE", "ACTOR", "EVENT", "ACTION", "OUTCOME", "REASON"]


def _actor(rec: dict) -> str:
    a = rec.get("actor") or {}
    who = a.get("email") or a.get("sub")
    return f"{a.get('type', '?')}:{who}" if who else a.get("type", "?")


def _row(rec: dict) -> list:
    return [rec["seq"], rec["ts"][:23].replace("T", " "), rec.get("workspace"), _actor(rec), rec.get("event"),
            rec.get("action"), rec.get("outcome"), rec.get("reason")]


@app.callback()
def tail(
    ctx: typer.Context,
    n: int = typer.Option(20, "-n", "--lines", min=1, metavar="N", help="How many of the latest records."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new records until Ctrl-C."),
    workspace: str = typer.Option(None, "-w", "--workspace", envvar="BOTCTL_WORKSPACE", metavar="NAME", autocompletion=context.complete_workspace, help="Only this workspace."),
    event: str = typer.Option(None, "--event", metavar="EVENT", help="Only this event, e.g. workspace.created."),
    action: str = typer.Option(None, "--action", metavar="ACTION", help="Only this action, e.g. zendesk.create_ticket."),
    outcome: str = typer.Option(None, "--outcome", metavar="OUTCOME", help="ok | denied | error | pending | unknown"),
    visitor: str = typer.Option(None, "--visitor", metavar="EMAIL", help="Only this visitor's records."),
    since: str = typer.Option(None, "--since", metavar="WHEN", help="10m, 2h, 3d, or a date like 2026-11-01T00:00."),
    json_out: bool = JSON,
) -> None:
    """Show the latest audit records (default 20), optionally following new ones."""
    if ctx.invoked_subcommand is not None:
        return
    from botctl.audit import OUTCOMES, AuditReader, Filters, parse_since
    from botctl.errors import UsageError

    output.use_json(json_out)
    if outcome is not None and outcome not in OUTCOMES:
        raise UsageError(f"unknown outcome {outcome!r}.", hint="Use ok, denied, error, pending or unknown.")
    filters = Filters(workspace, event, action, outcome, visitor, parse_since(since) if since else None)
    reader = AuditReader(context.home(ctx))
    try:
        records = reader.latest(filters, n)
        if json_out:
            for rec in records:
                output.emit_json(rec, stream=True)
        elif not follow or records:
            output.table(COLUMNS, [_row(r) for r in records], empty="no audit records match")
        if not follow:
            return
        start = reader.head_seq()
        try:
            for rec in reader.follow(filters, start_after=start):
                if json_out:
                    output.emit_json(rec, stream=True)
                else:
                    import sys

                    sys.stdout.write("\t".join(output.cell(v) for v in _row(rec)) + "\n")
                    sys.stdout.flush()
        except KeyboardInterrupt:
            return  # Ctrl-C is how --follow ends: not an error
    finally:
        reader.close()


@app.command("show")
def show(ctx: typer.Context, seq: int = typer.Argument(..., metavar="SEQ", help="The record's sequence number."),
         json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show one audit record in full."""
    from botctl.audit import AuditReader

    output.use_json(json_out)
    reader = AuditReader(context.home(ctx))
    try:
        rec = reader.get(seq)
    finally:
        reader.close()
    if json_out:
        output.emit_json(rec)
        return
    output.fields([
        ("seq", rec["seq"]), ("time", rec["ts"]), ("workspace", rec.get("workspace")), ("actor", _actor(rec)),
        ("event", rec.get("event")), ("action", rec.get("action")), ("connector", rec.get("connector")),
        ("outcome", rec.get("outcome")), ("reason", rec.get("reason")), ("detail", rec.get("detail")),
        ("request id", rec.get("request_id")), ("prev hash", rec["prev_hash"]), ("hash", rec["hash"]),
    ])


@app.command("verify")
def verify(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON.")) -> None:
    """Check the whole chain and its checkpoint; exit 10 at the first bad record."""
    from botctl import audit
    from botctl.errors import EXIT_AUDIT_BROKEN

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    verdict = audit.verify(a.home, a.vault.audit_key(), a.vault.conn)
    if json_out:
        output.emit_json(verdict.as_dict())
    elif verdict.ok:
        output.status(f"audit log intact: {verdict.records} records, head {verdict.head_seq}"
                      + (f", checkpoint {verdict.checkpoint_seq}" if verdict.checkpoint_seq is not None else ""))
        for note in verdict.notes:
            output.status(f"note: {note}")
    else:
        output.error(f"audit log broken at record {verdict.first_bad_seq}: {verdict.problem}",
                     "Keep a copy of audit.db and vault.db for investigation before changing anything.")
    if not verdict.ok:
        raise typer.Exit(EXIT_AUDIT_BROKEN)
