"""`botctl cluster ca|cert`: the certificates of the mutual-TLS link between the provider and remote edges."""

import typer

from botctl.cli import context, output

app = context.group()
ca_app = context.group()
cert_app = context.group()
app.add_typer(ca_app, name="ca", help="The cluster's certificate authority (in the home, key 0600).")
app.add_typer(cert_app, name="cert", help="Issue and revoke provider and edge certificates.")


@app.callback()
def cluster() -> None:
    """The certificates that let an edge on another host reach the provider over mutual TLS."""


def _home(ctx: typer.Context):  # type: ignore[no-untyped-def]
    home = context.home(ctx)
    if not home.exists():
        from botctl.errors import BotctlError

        raise BotctlError(
            f"no botctl home at {home.path}.", hint="Run `botctl init` first.", code="not_initialised"
        )
    return home


@ca_app.command("init")
def ca_init(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")
) -> None:
    """Create the cluster CA (ECDSA P-256): ca.key stays in the home; ca.crt goes to every edge host."""
    from botctl.cluster import pki

    output.use_json(json_out)
    home = _home(ctx)
    result = pki.init_ca(home.path)
    context.app(ctx, create=False).audit(
        "cluster.ca_created", detail={"fingerprint": result["fingerprint"], "not_after": result["not_after"]}
    )
    if json_out:
        output.emit_json(result)
        return
    output.status(f"cluster CA created: {result['ca']} (sha256 {result['fingerprint'][:16]}…)")


@cert_app.command("issue")
def cert_issue(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="`provider` (the provider's server certificate) or an edge's name."),
    days: int = typer.Option(30, "--days", help="Validity in days (1-397)."),
    out: str = typer.Option(
        None,
        "--out",
        metavar="DIR",
        help="Write NAME.crt and NAME.key here (default: cluster/certs in the home).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Issue a short-lived certificate and key (0600); an edge's is added to the provider's allow-list."""
    from pathlib import Path

    from botctl.cluster import pki

    output.use_json(json_out)
    home = _home(ctx)
    result = pki.issue(home.path, name, days=days, out_dir=Path(out) if out else None)
    context.app(ctx, create=False).audit(
        "cluster.cert_issued",
        detail={k: result[k] for k in ("name", "role", "serial", "fingerprint", "not_after")},
    )
    if json_out:
        output.emit_json(result)
        return
    output.status(
        f"issued {result['role']} certificate {name} (serial {result['serial']}, until "
        f"{result['not_after'][:10]}): {result['cert']}, key {result['key']}"
    )


@cert_app.command("revoke")
def cert_revoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The edge's name."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove an edge's certificate from the allow-list: the provider refuses it from the next connection."""
    from botctl.cluster import pki

    output.use_json(json_out)
    home = _home(ctx)
    result = pki.revoke(home.path, name)
    context.app(ctx, create=False).audit("cluster.cert_revoked", detail=result)
    if json_out:
        output.emit_json(result)
        return
    output.status(
        f"revoked {name}: serial {', '.join(result['revoked'])} is refused from the next connection"
    )


@cert_app.command("list")
def cert_list(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print as JSON.")
) -> None:
    """The edge certificates the provider accepts (name, serial, expiry)."""
    from botctl.cluster import pki

    output.use_json(json_out)
    rows = [
        {"fingerprint": fp, **v}
        for fp, v in sorted(pki.load_allowed(_home(ctx).path).items(), key=lambda kv: kv[1].get("name", ""))
    ]
    if json_out:
        output.emit_json(rows)
        return
    output.table(["NAME", "SERIAL", "NOT AFTER"], [(r["name"], r["serial"], r["not_after"]) for r in rows])
