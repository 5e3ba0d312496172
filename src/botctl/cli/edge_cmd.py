"""`botctl edge start`: the edge alone, on a host without the keys, reaching the provider over mutual TLS."""

import typer

from botctl.cli import context, output

app = context.group()


@app.callback()
def edge() -> None:
    """Run an edge on its own host, reaching a remote provider over mutual TLS."""


@app.command("start")
def start(
    provider: str = typer.Option(
        ..., "--provider", metavar="https://HOST:PORT", help="The provider's --provider-listen address."
    ),
    cert: str = typer.Option(
        ..., "--cert", metavar="FILE", help="This edge's certificate (cluster cert issue NAME)."
    ),
    key: str = typer.Option(..., "--key", metavar="FILE", help="This edge's private key."),
    ca: str = typer.Option(..., "--ca", metavar="FILE", help="The cluster CA certificate (ca.crt)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", envvar="BOTCTL_HOST", metavar="HOST", help="Edge address."
    ),
    port: int = typer.Option(8765, "--port", envvar="BOTCTL_PORT", metavar="PORT", help="Edge port."),
    trust_proxy: int = typer.Option(
        0, "--trust-proxy", metavar="N", help="N reverse proxies stand in front."
    ),
    sandbox: str = typer.Option(
        "auto",
        "--sandbox",
        metavar="MODE",
        help="Landlock: auto (where the kernel has it), landlock (or exit), none.",
    ),
) -> None:
    """Serve visitors here; every action goes to the provider on another host, over mutual TLS.

    Runs in the foreground (systemd, containers) as `python -m botctld` with only what Python needs in
    its environment: no home, no database URL, no master key. It refuses a provider whose certificate
    does not chain to the CA or does not carry the name `provider`.
    """
    import os
    import sys

    from botctl.daemon.supervisor import edge_env

    if sandbox not in ("auto", "landlock", "none"):
        from botctl.errors import UsageError

        raise UsageError(f"--sandbox {sandbox!r}: expected auto, landlock or none.", code="invalid_sandbox")
    argv = [
        sys.executable,
        "-P",
        "-m",
        "botctld",
        "--provider",
        provider,
        "--cert",
        os.path.abspath(cert),
        "--key",
        os.path.abspath(key),
        "--ca",
        os.path.abspath(ca),
        "--host",
        host,
        "--port",
        str(port),
        "--trust-proxy",
        str(trust_proxy),
        "--sandbox",
        sandbox,
    ]
    output.status(f"botctl edge: http://{host}:{port} -> {provider} (mutual TLS), Ctrl-C to stop")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, edge_env())  # noqa: S606 -- a fixed argv, no shell: become the edge
