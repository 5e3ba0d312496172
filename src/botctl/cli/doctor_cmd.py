import typer

from botctl.cli import context, output

app = context.group(no_args_is_help=False)


@app.command("doctor")
def doctor(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1), e.g. for a CI check."),
) -> None:
    """Check permissions, master key, keyring, schema, daemon, connections and the audit chain.

    Exit 0 when nothing failed (warnings are printed, with their fix), 1 when something failed, or,
    with --strict, when anything warned.
    """
    from botctl import doctor as doc

    output.use_json(json_out)
    findings = doc.run(context.home(ctx))
    act = doc.needs_action(findings, strict=strict)
    if json_out:
        output.emit_json({"ok": not act, "findings": [f.as_dict() for f in findings]})
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for f in findings:
            mark = output.paint(marks[f.status], {"warn": "warn", "fail": "bad"}.get(f.status))
            print(f"{mark}  {f.check}: {f.message}")
            if f.fix and f.status != "ok":
                print(f"      fix: {f.fix}")
    if act:
        raise typer.Exit(1)
