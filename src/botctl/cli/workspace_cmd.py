import typer

from botctl.cli import context, output

app = context.group()

JSON = typer.Option(False, "--json", help="Print as JSON.")


def _show(ws, json_out: bool) -> None:
    if json_out:
        output.emit_json(ws.as_dict())
    else:
        output.fields(
            [
                ("name", ws.name),
                ("id", ws.id),
                ("plan", ws.plan),
                ("display name", ws.display_name),
                ("origins", list(ws.origins)),
                ("created", ws.created_at),
                ("updated", ws.updated_at),
            ]
        )


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="Lowercase slug, 2-63 characters."),
    plan: str = typer.Option("free", "--plan", metavar="PLAN", help="free | pro | business"),
    origin: list[str] = typer.Option(
        [], "--origin", metavar="URL", help="Allowed site origin for the widget (repeatable)."
    ),
    display_name: str = typer.Option(
        None, "--display-name", metavar="TEXT", help="Shown to visitors in the widget."
    ),
    json_out: bool = JSON,
) -> None:
    """Create a workspace with its own encryption key."""
    from botctl import workspaces

    output.use_json(json_out)
    workspaces.validate_name(name)
    workspaces.validate_plan(plan)
    workspaces.normalize_origins(origin)
    ws = workspaces.create(context.app(ctx), name, plan=plan, origins=origin, display_name=display_name)
    if json_out:
        output.emit_json(ws.as_dict())
    else:
        output.status(f"created workspace {ws.name} (plan {ws.plan})")


@app.command("list")
def list_(ctx: typer.Context, json_out: bool = JSON) -> None:
    """List workspaces."""
    from botctl import workspaces
    from botctl.vault import Vault

    output.use_json(json_out)
    home = context.home(ctx)
    vault = Vault.open_readonly(home)
    if vault is None:  # a mistyped --home / BOTCTL_HOME is not "no workspaces yet"
        from botctl.errors import BotctlError

        raise BotctlError(
            f"no botctl home at {home.path}.",
            code="not_initialised",
            hint="Run `botctl init` (or pass --home / set BOTCTL_HOME to an existing home).",
        )
    items = workspaces.list_all(vault.conn)
    vault.close()
    if json_out:
        output.emit_json([w.as_dict() for w in items])
        return
    output.table(
        ["NAME", "PLAN", "ORIGINS", "CREATED"],
        [(w.name, w.plan, list(w.origins), w.created_at[:19].replace("T", " ")) for w in items],
        empty="no workspaces yet; create one with `botctl workspace create NAME`",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=context.complete_workspace),
    json_out: bool = JSON,
) -> None:
    """Show one workspace."""
    from botctl import workspaces
    from botctl.errors import NotFound
    from botctl.vault import Vault

    output.use_json(json_out)
    vault = Vault.open_readonly(context.home(ctx))
    if vault is None:
        raise NotFound(
            f"no workspace named {name!r}.", hint="See `botctl workspace list`.", code="unknown_workspace"
        )
    with vault:
        _show(workspaces.get(vault.conn, name), json_out)


@app.command("set-plan")
def set_plan(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=context.complete_workspace),
    plan: str = typer.Argument(..., metavar="PLAN", help="free | pro | business"),
    json_out: bool = JSON,
) -> None:
    """Change a workspace's plan (actions run on pro and business)."""
    from botctl import workspaces

    output.use_json(json_out)
    workspaces.validate_plan(plan)
    ws = workspaces.update(context.app(ctx, create=False), name, plan=plan)
    _show(ws, json_out) if json_out else output.status(f"{ws.name}: plan is now {ws.plan}")


@app.command("set-origins")
def set_origins(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=context.complete_workspace),
    origins: list[str] = typer.Argument(
        None, metavar="URL...", help="Allowed origins; none clears the list."
    ),
    json_out: bool = JSON,
) -> None:
    """Replace the origins allowed to embed this workspace's widget."""
    from botctl import workspaces

    output.use_json(json_out)
    workspaces.normalize_origins(origins or [])
    ws = workspaces.update(context.app(ctx, create=False), name, origins=origins or [])
    _show(ws, json_out) if json_out else output.status(
        f"{ws.name}: origins {', '.join(ws.origins) or '(none)'}"
    )


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=context.complete_workspace),
    json_out: bool = JSON,
) -> None:
    """Re-encrypt this workspace's secrets under a new workspace key; the old key is destroyed."""
    from botctl import workspaces

    output.use_json(json_out)
    ws, version = workspaces.rotate_key(context.app(ctx, create=False), name)
    if json_out:
        output.emit_json({"name": ws.name, "key_version": version})
    else:
        output.status(f"{ws.name}: secrets re-encrypted under key version {version}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=context.complete_workspace),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Do not ask (needed without a terminal): this destroys the workspace's key.",
    ),
    json_out: bool = JSON,
) -> None:
    """Delete a workspace and its key: its secrets become unreadable for good (crypto-shredding)."""
    from botctl import workspaces

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    workspaces.get(a.vault.conn, name)  # a typo is "no workspace named", before any question
    context.confirm(
        f"Delete workspace {name!r}, destroying its key and every secret in it?",
        yes=yes,
        command=f"botctl workspace delete {name}",
    )
    ws = workspaces.delete(a, name)
    pending = a.vault.shred_pending
    if json_out:
        output.emit_json(
            {"name": ws.name, "deleted": True, "shredding": "pending" if pending else "complete"}
        )
    else:
        output.status(f"deleted workspace {ws.name}; its key is destroyed")
    if pending:
        output.warn(
            "shredding is pending: another process (the daemon, a backup) holds an old snapshot of the "
            "vault, so the destroyed key's bytes are still on disk; the next botctl command that opens "
            "the vault finishes it (or run `botctl doctor` to check)."
        )


@app.command("set-identity")
def set_identity(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", autocompletion=context.complete_workspace),
    issuer: str = typer.Option(None, "--issuer", metavar="ISS", help="Require this iss claim."),
    no_issuer: bool = typer.Option(False, "--no-issuer", help="Stop requiring an iss claim."),
    max_lifetime: str = typer.Option(
        None, "--max-lifetime", metavar="DURATION", help="Longest exp - iat (e.g. 1h)."
    ),
) -> None:
    """Identity token rules for a workspace: required issuer, longest token lifetime."""
    from botctl import identity, workspaces
    from botctl.cli.identity_cmd import _parse_duration

    a = context.app(ctx, create=False)
    ws = workspaces.get(a.vault.conn, name)
    identity.set_settings(
        a,
        ws,
        issuer=issuer,
        clear_issuer=no_issuer,
        max_lifetime=_parse_duration(max_lifetime, "--max-lifetime") if max_lifetime else None,
    )
    iss, life = identity.settings(a.vault.conn, ws)
    output.status(f"{ws.name}: issuer {iss or '(not required)'}, max lifetime {life}s")
