import typer

from botctl.cli import context, output

app = context.group(invoke_without_command=True, no_args_is_help=False)

JSON = typer.Option(False, "--json", help="One JSON object per line (NDJSON).")
COLUMNS = ["SEQ", "TIME (UTC)", "WORKSPACE", "ACTOR", "EVENT", "ACTION", "OUTCOME", "REASON"]


def _actor(rec: dict) -> str:
    a = rec.get("actor") or {}
    who = a.get("email") or a.get("sub")
    return f"{a.get('type', '?')}:{who}" if who else a.get("type", "?")


def _reason(rec: dict) -> str | None:
    """The REASON cell; an `unknown` outcome resolved later by an `action.outcome_late` says so, and that
    late record says which record it resolves (`AuditReader.annotated`)."""
    reason, late, resolves = rec.get("reason"), rec.get("resolved_late"), rec.get("resolves")
    if late is not None:
        return f"{reason or ''} (late: {late['outcome']} #{late['seq']})".strip()
    if resolves is not None:
        return f"{reason or ''} (resolves #{resolves['seq']}, was {resolves['outcome']})".strip()
    return reason


def _row(rec: dict) -> list:
    return [
        rec["seq"],
        rec["ts"][:23].replace("T", " "),
        rec.get("workspace"),
        _actor(rec),
        rec.get("event"),
        rec.get("action"),
        rec.get("outcome"),
        _reason(rec),
    ]


@app.callback()
def tail(
    ctx: typer.Context,
    n: int = typer.Option(20, "-n", "--lines", min=1, metavar="N", help="How many of the latest records."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new records until Ctrl-C."),
    workspace: str = typer.Option(
        None,
        "-w",
        "--workspace",
        envvar="BOTCTL_WORKSPACE",
        metavar="NAME",
        autocompletion=context.complete_workspace,
        help="Only this workspace.",
    ),
    event: str = typer.Option(
        None,
        "--event",
        metavar="EVENT",
        autocompletion=context.complete_event,
        help="Only this event, e.g. workspace.created.",
    ),
    action: str = typer.Option(
        None, "--action", metavar="ACTION", help="Only this action, e.g. zendesk.create_ticket."
    ),
    outcome: str = typer.Option(
        None,
        "--outcome",
        metavar="OUTCOME",
        autocompletion=context.complete_outcome,
        help="ok | denied | error | pending | unknown | retried",
    ),
    visitor: str = typer.Option(None, "--visitor", metavar="EMAIL", help="Only this visitor's records."),
    since: str = typer.Option(
        None, "--since", metavar="WHEN", help="10m, 2h, 3d, or a date like 2026-11-01T00:00."
    ),
    until: str = typer.Option(
        None, "--until", metavar="WHEN", help="Only records before WHEN (same forms as --since)."
    ),
    request_id: str = typer.Option(
        None,
        "--request-id",
        metavar="REQ",
        help='Only this request, e.g. the req_… a visitor was shown as "Reference".',
    ),
    actor: str = typer.Option(
        None,
        "--actor",
        metavar="ACTOR",
        help="operator | ci | visitor | system, "
        "TYPE:WHO, or WHO (an email or sub), as the ACTOR column shows it.",
    ),
    connector: str = typer.Option(
        None, "--connector", metavar="NAME", help="Only this connector, e.g. zendesk."
    ),
    json_out: bool = JSON,
) -> None:
    """Show the latest audit records (default 20), optionally following new ones."""
    if ctx.invoked_subcommand is not None:
        return
    from botctl.audit import OUTCOMES, AuditReader, Filters
    from botctl.durations import parse_since
    from botctl.errors import UsageError

    output.use_json(json_out)
    if outcome is not None and outcome not in OUTCOMES:
        raise UsageError(
            f"unknown outcome {outcome!r}.", hint="Use ok, denied, error, pending, unknown or retried."
        )
    filters = Filters(
        workspace=workspace,
        event=event,
        action=action,
        outcome=outcome,
        visitor=visitor,
        since=parse_since(since) if since else None,
        until=parse_since(until, flag="--until") if until else None,
        request_id=request_id,
        actor=actor,
        connector=connector,
    )
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise UsageError(
            f"--until {until!r} is not after --since {since!r}: no record can match.",
            hint="Give an --until later than --since.",
        )
    reader = AuditReader(context.home(ctx))
    try:
        # `unknown` outcomes whose real outcome was recorded late (`action.outcome_late`) show it beside them;
        # the late records show which record they resolve, and a filter that shows an unknown shows them too.
        # Following, the backlog is bounded by the head it was read at, and the follower starts after that
        # head: a record written meanwhile is printed once, by the one or the other.
        if follow:
            latest, start = reader.backlog(filters, n)
        else:
            latest = reader.latest(filters, n, with_late=True)
        records = reader.annotated(latest)
        if json_out:
            for rec in records:
                output.emit_json(rec, stream=True)
        elif not follow or records:
            output.table(COLUMNS, [_row(r) for r in records], empty="no audit records match")
        if not follow:
            return
        try:
            for rec in reader.follow(filters, start_after=start):
                # A late outcome arriving now names the `unknown` line already printed.
                [rec] = reader.annotated([rec])
                if json_out:
                    output.emit_json(rec, stream=True)
                else:
                    import sys

                    cells = [output.cell(v) for v in _row(rec)]
                    at = COLUMNS.index("OUTCOME")
                    cells[at] = output.paint(cells[at], output.MEANING.get(cells[at]))
                    sys.stdout.write("\t".join(cells) + "\n")
                    sys.stdout.flush()
        except KeyboardInterrupt:
            raise  # how --follow ends, still an interruption: "interrupted", exit 130 (botctl.cli.main)
    finally:
        reader.close()


@app.command("show")
def show(
    ctx: typer.Context,
    seq: int = typer.Argument(..., metavar="SEQ", help="The record's sequence number."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show one audit record in full."""
    from botctl.audit import AuditReader

    output.use_json(json_out)
    reader = AuditReader(context.home(ctx))
    try:
        [rec] = reader.annotated([reader.get(seq)])
    finally:
        reader.close()
    late, resolves = rec.get("resolved_late"), rec.get("resolves")
    if json_out:
        output.emit_json(rec)
        return
    output.fields(
        [
            ("seq", rec["seq"]),
            ("time", rec["ts"]),
            ("workspace", rec.get("workspace")),
            ("actor", _actor(rec)),
            ("event", rec.get("event")),
            ("action", rec.get("action")),
            ("connector", rec.get("connector")),
            ("outcome", rec.get("outcome")),
            ("reason", rec.get("reason")),
            ("detail", rec.get("detail")),
            ("request id", rec.get("request_id")),
            *([("resolved late", late)] if late is not None else []),
            *([("resolves", resolves)] if resolves is not None else []),
            ("prev hash", rec["prev_hash"]),
            ("hash", rec["hash"]),
        ]
    )


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor_file: str = typer.Option(
        None,
        "--anchor",
        metavar="FILE",
        help="Also check every anchor in FILE "
        "(lines from `botctl audit anchor`): the chain must still reach each one.",
    ),
    expect_head: str = typer.Option(
        None,
        "--expect-head",
        metavar="SEQ:HASH",
        help="Also check that record SEQ exists with this hash (a head you noted earlier).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Check the whole chain, its checkpoint and any anchors; exit 10 at the first problem."""
    from botctl import audit
    from botctl.errors import EXIT_AUDIT_BROKEN

    output.use_json(json_out)
    anchors = [audit.parse_expect_head(expect_head)] if expect_head is not None else []
    a = context.app(ctx, create=False)
    key = a.vault.audit_key()
    if anchor_file is not None:
        anchors += audit.load_anchors(anchor_file, key)
    verdict = audit.verify(a.home, key, a.vault.conn, anchors=anchors)
    if json_out:
        output.emit_json(verdict.as_dict())
    elif verdict.ok:
        output.status(
            f"audit log intact: {verdict.records} records, head {verdict.head_seq}"
            + (f", checkpoint {verdict.checkpoint_seq}" if verdict.checkpoint_seq is not None else "")
            + (f", {verdict.anchors} anchor(s) reached" if verdict.anchors else "")
            + (f", {len(verdict.sealed_breaks)} sealed break(s)" if verdict.sealed_breaks else "")
        )
        for note in verdict.notes:
            output.status(f"note: {note}")
    else:
        where = f" at record {verdict.first_bad_seq}" if verdict.first_bad_seq is not None else ""
        output.error(
            f"audit log broken{where}: {verdict.problem}",
            "Keep a copy of audit.db and vault.db for investigation before changing anything.",
        )
    if not verdict.ok:
        raise typer.Exit(EXIT_AUDIT_BROKEN)


@app.command("seal-break")
def seal_break(
    ctx: typer.Context,
    reason: str = typer.Option(
        ..., "--reason", metavar="TEXT", help="Why, in your words (kept in the record)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = typer.Option(False, "--json", help="Print the new record as JSON."),
) -> None:
    """Record a break between the log's head and its checkpoint in the chain, so writes can resume."""
    import sys

    from botctl import audit
    from botctl.errors import BotctlError, UsageError

    output.use_json(json_out)
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise UsageError(
            "--reason must say why, in 1 to 500 characters.",
            hint='e.g. --reason "audit.db restored from the 02:00 backup after a disk failure"',
        )
    a = context.app(ctx, create=False)
    state = audit.head_state(a.home, a.vault.audit_key(), a.vault.conn)
    if state["chain"] == "ok":
        raise BotctlError(
            "nothing to seal: the audit log's head matches its checkpoint.",
            hint="`botctl audit verify` checks the whole chain.",
            code="audit_chain_intact",
        )
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"sealing records this break in the audit log for good: {state['problem']}.",
                hint="Re-run with --yes once copies of audit.db and vault.db are kept.",
            )
        output.status(f"the audit log's head disagrees with its checkpoint: {state['problem']}.")
        if not typer.confirm("Record this break in the audit log (the evidence is kept) and resume writes?"):
            raise typer.Exit(1)
    rec = a.writer.seal_break(reason, actor=a.actor)
    if json_out:
        output.emit_json(rec)
        return
    output.status(
        f"sealed: record {rec['seq']} ({rec['event']}) keeps the break on record: "
        f"{rec['detail']['problem']}. Writes resume; `botctl audit verify` lists it."
    )


@app.command("anchor")
def anchor(
    ctx: typer.Context,
    out: str = typer.Option(
        None,
        "--out",
        metavar="FILE",
        help="Append the signed line to FILE instead of "
        "printing it (keep FILE where this machine cannot rewrite it).",
    ),
    public_key: bool = typer.Option(
        False, "--public-key", help="Print the public key that verifies anchors (PEM) instead."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the anchor (or the key) as JSON."),
) -> None:
    """Sign the current head {seq, hash, ts}: later, `audit verify --anchor FILE` detects a rollback past it."""
    from botctl import audit

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    key = a.vault.audit_key()
    if public_key:
        pub = audit.anchor_public_key(key)
        if json_out:
            output.emit_json(pub)
        else:
            import sys

            sys.stdout.write(pub["public_key_pem"])
        return
    rec = audit.make_anchor(a.home, key, a.vault.conn)
    import json

    line = json.dumps(rec, separators=(",", ":"))
    if out is not None:
        _append_line(out, line)
        output.status(f"anchored record {rec['seq']} in {out}")
    if json_out:
        output.emit_json(rec)
    elif out is None:
        import sys

        sys.stdout.write(line + "\n")
        output.status(
            f"anchored record {rec['seq']}: keep this line where this machine cannot change it; "
            "`botctl audit verify --anchor FILE` checks it"
        )


def _append_line(path: str, line: str) -> None:
    import os

    from botctl.errors import UsageError

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UsageError(
            f"cannot append to {path!r}: {exc.strerror or type(exc).__name__}.",
            hint="Give a writable file path for --out.",
        ) from None


from botctl.cli import audit_export_cmd  # noqa: E402 - export / export-key live in their own module

audit_export_cmd.register(app)

from botctl.cli import audit_sink_cmd  # noqa: E402 - `audit sink ...` lives in its own module

audit_sink_cmd.register(app)
