import typer

from botctl.cli import context, output

app = context.group()


@app.callback()
def _group() -> None:
    """Run local stand-ins of the eight vendor APIs (for tests, demos and trying botctl out)."""


@app.command("serve")
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="HOST", help="Address to bind (loopback by default)."
    ),
    port: int = typer.Option(8790, "--port", metavar="PORT", help="Port to listen on."),
    token_ttl: int = typer.Option(
        None, "--token-ttl", metavar="SECONDS", help="Lifetime of issued access tokens."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (off by default)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Not even the start-up line."),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="OAuth: approve consent without showing the page."
    ),
) -> None:
    """Serve local stand-ins for all eight vendor APIs under http://HOST:PORT/<connector>/...

    Credentials: GET /_sandbox/credentials. Seed ids: GET /_sandbox/seed. Request counts: GET /_sandbox/stats.
    Not a place for real credentials: it accepts only its own.
    """
    from botctl.sandbox.server import serve as run_server

    if quiet:
        output.quiet = True
    output.status(f"sandbox: http://{host}:{port}  (credentials: http://{host}:{port}/_sandbox/credentials)")
    opts = {
        "access_log": access_log,
        "auto_approve": auto_approve,
        "log_level": "info" if access_log else "warning",
    }
    if token_ttl is not None:
        opts["token_ttl"] = token_ttl
    try:
        run_server(host, port, **opts)
    except KeyboardInterrupt:
        output.status("sandbox stopped")
