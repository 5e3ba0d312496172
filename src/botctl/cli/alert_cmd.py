"""`botctl alert add|list|remove|test|flush`: signed webhooks for what an operator must hear about."""

from __future__ import annotations

import typer

from botctl.cli import context, output

app = context.group(
    help="Signed webhooks for needs_reauth, refresh failures, a broken audit chain, restarts."
)


@app.command("add")
def add(
    ctx: typer.Context,
    url: str = typer.Argument(..., metavar="URL", help="https, or http to 127.0.0.1 / ::1 / localhost."),
    secret_env: str = typer.Option(
        ...,
        "--secret-env",
        metavar="VAR",
        help="The environment variable holding the "
        "HMAC signing secret (its name is stored, never its value).",
    ),
    name: str = typer.Option(None, "--name", metavar="NAME", help="What to call it (default: webhook-N)."),
) -> None:
    """Send every alert raised from now on to URL (HMAC-signed, retried with backoff; docs/alerts.md)."""
    import os
    import re

    from botctl.audit import destinations, shipstate
    from botctl.errors import UsageError

    destinations.check_webhook_url(url)
    shipstate.check_env_name(secret_env)
    if name is not None and not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", name):
        raise UsageError(
            f"--name {name!r}: use 1-40 lower-case letters, digits, '.', '_' or '-'.",
            hint="e.g. --name oncall",
        )
    a = context.app(ctx, create=False)
    conn = shipstate.connect(context.home(ctx))
    try:
        name = name or shipstate.next_name(conn, "alert_hooks", "webhook")
        if any(h.name == name for h in shipstate.list_hooks(conn)):
            shipstate.add_hook(conn, name, url, secret_env)  # raises already_exists
        a.audit(
            "alert.webhook_added",
            actor=a.actor,
            detail={"name": name, "url": destinations.redact_url(url), "signed_with_env": secret_env},
        )
        shipstate.add_hook(conn, name, url, secret_env)
        from botctl.audit import alerting

        alerting.scan_records(context.home(ctx), conn)  # alerts are read from the records written from now on
    finally:
        conn.close()
    if not os.environ.get(secret_env):
        output.warn(f"{secret_env} is not set here: the process that sends alerts (the daemon) needs it")
    output.status(f"added alert webhook {name}: {destinations.redact_url(url)}")


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Each alert webhook with its pending alerts, failures and last error."""
    from botctl.audit import alerting

    output.use_json(json_out)
    rows = alerting.status(context.home(ctx))
    if json_out:
        output.emit_json(rows)
        return
    output.table(
        ["NAME", "URL", "SECRET ENV", "PENDING", "FAILURES", "LAST ERROR"],
        [[r["name"], r["url"], r["secret_env"], r["pending"], r["failures"], r["last_error"]] for r in rows],
        empty="no alert webhooks (add one with `botctl alert add URL --secret-env VAR`)",
    )


@app.command("remove")
def remove(ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME")) -> None:
    """Stop sending alerts to a webhook."""
    from botctl.audit import shipstate

    a = context.app(ctx, create=False)
    conn = shipstate.connect(context.home(ctx))
    try:
        if not any(h.name == name for h in shipstate.list_hooks(conn)):
            shipstate.remove_hook(conn, name)  # raises not found
        a.audit("alert.webhook_removed", actor=a.actor, detail={"name": name})
        shipstate.remove_hook(conn, name)
    finally:
        conn.close()
    output.status(f"removed alert webhook {name}")


@app.command("test")
def test(ctx: typer.Context) -> None:
    """Raise an `alert.test` alert and deliver pending alerts now (exit 1 if a webhook did not take it)."""
    from botctl.audit import alerting

    home = context.home(ctx)
    alerting.raise_now(home, "alert.test", {"message": "a test alert from botctl alert test"})
    _flush(home)


@app.command("flush")
def flush(ctx: typer.Context) -> None:
    """Deliver pending alerts now, from this process (exit 1 if a webhook is still behind)."""
    _flush(context.home(ctx))


def _flush(home) -> None:  # noqa: ANN001
    from botctl.audit import alerting, shipstate

    conn = shipstate.connect(home)
    try:
        alerting.scan_records(home, conn)
        for r in alerting.deliver(conn, force=True):
            output.status(
                f"{r['hook']}: {r['sent']} alert(s) delivered"
                + (f"; failed: {r['error']}" if r.get("error") else "")
            )
    finally:
        conn.close()
    if any(r["pending"] for r in alerting.status(home)):
        raise typer.Exit(1)
