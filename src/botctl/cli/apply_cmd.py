"""`botctl apply`: provision workspaces, identity, knowledge, OAuth apps and connections from a TOML file."""

import sys

import typer

from botctl.cli import context, output

app = context.group(no_args_is_help=False)


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: str = typer.Option(
        ..., "-f", "--file", metavar="FILE", help="The TOML file describing the workspaces."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    prune: bool = typer.Option(
        False, "--prune", help="Also delete workspaces, connections and workspace OAuth apps not in the file."
    ),
    reconnect: bool = typer.Option(
        False, "--reconnect", help="Re-validate and re-save every connection, even unchanged ones."
    ),
    secrets_out: str = typer.Option(
        None,
        "--secrets-out",
        metavar="FILE",
        help="Write new HS256 secrets to this JSON file (0600) instead of printing them.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan and result as JSON (for CI)."),
    allow_hosts: list[str] = typer.Option(
        None,
        "--allow-host",
        metavar="HOST",
        help="Let credentials go to this host (HOST or HOST:PORT), which the "
        "connector does not fix: a self-hosted site/base_url, an OAuth "
        "endpoint override, a sandbox URL in the file. Repeatable.",
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Confirm the deletions --prune makes (workspace keys are destroyed)."
    ),
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="Like Terraform's: exit 0 nothing to change, 2 changes (made, or to "
        "make with --dry-run), 1 an error (an invalid file too), 7 partial.",
    ),
) -> None:
    """Make the vault match a TOML file: create, update (and with --prune delete) what differs.

    Secrets never appear in the file: name environment variables (api_key_env = "VAR"). The whole
    file is checked before anything changes (exit 2, FILE:LINE: key: problem). A credential bound
    for a host the connector does not fix needs --allow-host HOST (or a yes on a terminal); deleting
    with --prune needs --yes (or a yes on a terminal). Re-applying the same file changes nothing.
    Exit 0 applied or nothing to do, 2 invalid file, host not allowed or deletion not confirmed,
    7 some objects failed (the rest were applied; the plan says which). With --json, an invalid
    file's problems are listed as {file, line, key, message} under error.problems.
    """
    from botctl import provision

    output.use_json(json_out)

    def open_app(create: bool):
        if not create and not context.home(ctx).exists():
            return None
        return context.app(ctx, create=create)

    ask = context.interactive()  # as every destructive command asks (botctl.cli.context.confirm)

    def confirm_hosts(blocked) -> bool:
        for h in blocked:
            sys.stderr.write(f"{h.where}: sends a credential to {h.flag_value}\n")
        return _ask(
            f"Send credentials to {', '.join(dict.fromkeys(h.flag_value for h in blocked))}? "
            "These hosts are not the vendors' own. [y/N] "
        )

    def confirm_destroy(steps) -> bool:
        return _ask(f"--prune will delete {provision.destroy_summary(steps)}. Delete? [y/N] ")

    from botctl.errors import BotctlError

    try:
        result = provision.apply(
            open_app,
            file,
            dry_run=dry_run,
            prune=prune,
            reconnect=reconnect,
            secrets_out=secrets_out,
            allow_hosts=allow_hosts or (),
            confirm_hosts=confirm_hosts if ask else None,
            yes=yes,
            confirm_destroy=confirm_destroy if ask else None,
        )
    except BotctlError as exc:
        if not (json_out or detailed_exitcode):
            raise
        _report(exc, json_out)
        raise typer.Exit(1 if detailed_exitcode else exc.exit_code) from None
    if json_out:
        output.emit_json(result.as_dict())
    else:
        _print(result, secrets_out)
    if result.failed:
        raise typer.Exit(provision.EXIT_PARTIAL)
    if detailed_exitcode and any(s.action != "unchanged" for s in result.steps):
        raise typer.Exit(2)


def _report(exc, json_out: bool) -> None:  # noqa: ANN001
    """The error as main.run would print it; with --json, an invalid file's problems one by one, for CI."""
    from botctl.provision.errors import problem_fields

    output.error(exc.message, exc.hint, code=exc.code, as_json=False)
    if json_out:
        error = {"code": exc.code, "message": exc.message, "hint": exc.hint}
        if getattr(exc, "problems", None):
            error["problems"] = [problem_fields(p) for p in exc.problems]
        output.emit_json({"error": error})


def _ask(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}


def _print(result, secrets_out) -> None:
    for h in result.hosts:
        if h.allowed:
            output.status(f"{h.where}: credentials go to {h.flag_value} (allowed)")
        else:
            output.status(
                f"{h.where}: credentials would go to {h.flag_value}, a host the connector does not fix; "
                f"apply needs --allow-host {h.flag_value}"
            )
    rows = [
        (
            s.action,
            s.kind,
            s.name,
            s.detail
            + (f" [FAILED: {s.error}]" if s.status == "failed" else "")
            + (f" [skipped: {s.error}]" if s.status == "skipped" else "")
            + (" [DESTRUCTIVE]" if s.destructive else ""),
        )
        for s in result.steps
        if s.action != "unchanged"
    ]
    unchanged = sum(1 for s in result.steps if s.action == "unchanged")
    if not rows:
        output.status(f"nothing to do: {unchanged} object(s) already match the file")
        return
    output.table(["ACTION", "KIND", "NAME", "DETAIL"], rows)
    if result.dry_run:
        doomed = len(result.destructive)
        output.status(
            f"dry run: {len(rows)} change(s) would be made"
            + (f" ({doomed} destructive: apply them with --yes)" if doomed else "")
            + f", {unchanged} unchanged; nothing was changed"
        )
        return
    done = sum(1 for s in result.steps if s.status == "ok")
    output.status(
        f"applied {done} change(s), {unchanged} unchanged"
        + (f", {len(result.failed)} failed" if result.failed else "")
    )
    for s in result.failed:
        output.warn(f"{s.kind} {s.name}: {s.error}")
    for ws, entry in result.secrets.items():
        output.status(
            f"new HS256 secret for {ws}, kid {entry['kid']}. It is shown once; store it in your site's backend:"
        )
        print(entry["hs256_secret"])
    if secrets_out and any(
        s.kind == "identity_key" and s.name.endswith("/hs256") and s.status == "ok" for s in result.steps
    ):
        output.status(f"new HS256 secret(s) written to {secrets_out}")
