"""`botctl audit sink add|list|remove|flush`: where the audit log is shipped as it is written."""

from __future__ import annotations

import typer

from botctl.cli import context, output

app = context.group(help="Ship every audit record (with its chain hash) to a file, syslog or a webhook.")


def register(audit_app: typer.Typer) -> None:
    audit_app.add_typer(app, name="sink")


@app.command("add")
def add(
    ctx: typer.Context,
    kind: str = typer.Argument(..., metavar="KIND", help="file | syslog | webhook"),
    target: str = typer.Argument(
        None,
        metavar="[PATH|URL]",
        help="file: the path to append to; webhook: the URL "
        "(https, or http to loopback); syslog: none (use --server).",
    ),
    server: str = typer.Option(
        None, "--server", metavar="HOST:PORT", help="syslog: the server (default: the local /dev/log socket)."
    ),
    protocol: str = typer.Option(
        "udp",
        "--protocol",
        metavar="udp|tcp",
        help="syslog with --server: UDP (RFC 5426) or TCP with octet counting (RFC 6587).",
    ),
    secret_env: str = typer.Option(
        None,
        "--secret-env",
        metavar="VAR",
        help="webhook: the environment variable "
        "holding the HMAC signing secret (its name is stored, never its value).",
    ),
    name: str = typer.Option(None, "--name", metavar="NAME", help="What to call it (default: KIND-N)."),
    from_now: bool = typer.Option(
        False,
        "--from-now",
        help="Ship only records written from now on (default: the whole log, from record 1).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the sink as JSON."),
) -> None:
    """Add a sink: every committed record is delivered to it, in order, retried with backoff."""
    import os
    import re

    from botctl.audit import destinations, shipping, shipstate
    from botctl.errors import UsageError

    output.use_json(json_out)
    if kind not in shipstate.SINK_KINDS:
        raise UsageError(
            f"unknown sink kind {kind!r}.",
            hint="Use file PATH, syslog [--server HOST:PORT] or webhook URL --secret-env VAR.",
        )
    if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", name):
        raise UsageError(
            f"--name {name!r}: use 1-40 lower-case letters, digits, '.', '_' or '-'.",
            hint="e.g. --name offsite",
        )
    options: dict = {}
    if kind == "file":
        if not target:
            raise UsageError(
                "a file sink needs the PATH to append to.",
                hint="e.g. botctl audit sink add file /var/log/botctl/audit.ndjson",
            )
        target = os.path.abspath(target)
        if os.path.isdir(target):
            raise UsageError(f"{target} is a directory.", hint="Give a file path (created if missing).")
    elif kind == "syslog":
        if target:
            raise UsageError(
                "syslog takes its server as --server HOST:PORT, not an argument.",
                hint="e.g. botctl audit sink add syslog --server 127.0.0.1:514",
            )
        if protocol not in ("udp", "tcp"):
            raise UsageError(f"--protocol {protocol!r} is not udp or tcp.", hint="Use --protocol udp or tcp.")
        if server is None:
            target = destinations.SYSLOG_DEFAULT
        else:
            host, port = destinations.parse_server(server)
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            options["protocol"] = protocol
    else:
        if not target:
            raise UsageError(
                "a webhook sink needs its URL.",
                hint="e.g. botctl audit sink add webhook https://collector.example/botctl --secret-env VAR",
            )
        destinations.check_webhook_url(target)
        if secret_env is None:
            raise UsageError(
                "a webhook sink needs --secret-env VAR: requests are signed with that secret.",
                hint="export BOTCTL_SINK_SECRET=...; then --secret-env BOTCTL_SINK_SECRET",
            )
        options["secret_env"] = shipstate.check_env_name(secret_env)
    if secret_env is not None and kind != "webhook":
        raise UsageError("--secret-env goes with webhook sinks.", hint="Drop --secret-env.")
    a = context.app(ctx, create=False)
    home = context.home(ctx)
    start_seq, start_hash = shipping.head(home) if from_now else (0, None)
    conn = shipstate.connect(home)
    try:
        name = name or shipstate.next_name(conn, "sinks", kind)
        if any(s.name == name for s in shipstate.list_sinks(conn)):
            shipstate.add_sink(conn, name, kind, target, options)  # raises already_exists, writes nothing
        shown = destinations.redact_url(target) if kind == "webhook" else target
        # The variable's name is no secret, but `scrub` drops values under secret-looking keys: say it otherwise.
        named = {"protocol": options.get("protocol"), "signed_with_env": options.get("secret_env")}
        a.audit(
            "audit.sink_added",
            actor=a.actor,
            detail={
                "sink": name,
                "kind": kind,
                "destination": shown,
                **{k: v for k, v in named.items() if v},
                "from_seq": start_seq + 1,
            },
        )
        sink = shipstate.add_sink(
            conn, name, kind, target, options, start_seq=start_seq, start_hash=start_hash
        )
    finally:
        conn.close()
    if kind == "webhook" and not os.environ.get(options["secret_env"]):
        output.warn(
            f"{options['secret_env']} is not set here: the process that ships (the daemon) needs it in "
            "its environment"
        )
    out = {"name": sink.name, "kind": sink.kind, "destination": sink.describe(), "from_seq": start_seq + 1}
    if json_out:
        output.emit_json(out)
    else:
        output.status(
            f"added audit sink {sink.name}: {sink.describe()}, from record {start_seq + 1}; the daemon "
            "ships as records are written (or run `botctl audit sink flush`)"
        )


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Each sink with its cursor, backlog, failures and last error."""
    from botctl.audit import shipping

    output.use_json(json_out)
    rows = shipping.backlog(context.home(ctx))
    if json_out:
        output.emit_json(rows)
        return
    output.table(
        ["NAME", "DESTINATION", "DELIVERED", "BACKLOG", "FAILURES", "LAST ERROR"],
        [
            [r["name"], r["destination"], r["delivered_seq"], r["backlog"], r["failures"], r["last_error"]]
            for r in rows
        ],
        empty="no audit sinks (add one with `botctl audit sink add`)",
    )


@app.command("remove")
def remove(ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Stop shipping to a sink (what it already received stays there)."""
    from botctl.audit import shipstate

    a = context.app(ctx, create=False)
    conn = shipstate.connect(context.home(ctx))
    try:
        sink = shipstate.get_sink(conn, name)
        a.audit(
            "audit.sink_removed",
            actor=a.actor,
            detail={"sink": name, "kind": sink.kind, "delivered_seq": sink.delivered_seq},
        )
        shipstate.remove_sink(conn, name)
    finally:
        conn.close()
    output.status(f"removed audit sink {name}")


@app.command("flush")
def flush(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print each sink's result as JSON."),
) -> None:
    """Deliver every sink's backlog now, from this process (exit 1 if a sink is still behind)."""
    from botctl.audit import shipping

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    home = context.home(ctx)
    key = a.vault.audit_key()
    results: dict[str, dict] = {}
    while True:
        batch = shipping.ship_once(home, key=key, force=True, anchor_every=0.0, wait_lock=30.0)
        for r in batch:
            prev = results.get(r["sink"], {"sent": 0})
            results[r["sink"]] = {**r, "sent": prev["sent"] + r["sent"]}
        if not any(r["sent"] for r in batch):
            break
    behind = [r for r in shipping.backlog(home) if r["backlog"]]
    if json_out:
        output.emit_json({"sinks": list(results.values()), "behind": behind})
    else:
        for r in results.values():
            output.status(
                f"{r['sink']}: {r['sent']} record(s) delivered"
                + (f"; failed: {r['error']}" if r.get("error") else "")
            )
    if behind:
        raise typer.Exit(1)
