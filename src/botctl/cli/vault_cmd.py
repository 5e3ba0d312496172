import typer

from botctl.cli import context, output

app = context.group()


@app.command("status")
def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which master-key source is in use, schema version, counts and key versions."""
    from botctl import crypto, masterkey
    from botctl.errors import BotctlError
    from botctl.vault import Vault

    output.use_json(json_out)
    home = context.home(ctx)
    vault = Vault.open_readonly(home)
    if vault is None:
        data = {"home": str(home.path), "initialized": False}
        if json_out:
            output.emit_json(data)
        else:
            output.status(f"no vault at {home.path}; run `botctl init`.")
        return
    with vault:
        data = vault.status()
        problem = None
        try:
            found = masterkey.find(home, warn=False)
        except BotctlError as exc:
            found, problem = None, exc.message
        if found is None:
            problem = problem or "no master key found"
        elif crypto.key_check_value(found.key) != vault._meta("kcv"):
            problem = f"the master key from {found.location} does not open this vault"
        data["master_key"].update(
            source=found.source if found else None, location=found.location if found else None,
            opens_vault=found is not None and problem is None,
        )
        data["problem"] = problem
    if json_out:
        output.emit_json(data)
        return
    mk = data["master_key"]
    output.fields([
        ("home", data["home"]),
        ("schema", f"{data['schema_version']} (this botctl: {data['schema_latest']})"),
        ("master key", f"{mk['source'] or 'missing'} ({mk['location'] or '-'}), version {mk['version']}"),
        ("workspaces", data["workspaces"]),
        ("secrets", data["secrets"]),
        ("workspace keys", ", ".join(f"{k} v{v}" for k, v in data["workspace_key_versions"].items()) or "-"),
    ])
    if problem:
        output.warn(problem)
    elif mk["source"] == "file":
        output.warn("the master key is in a plain file; an OS keyring or BOTCTL_MASTER_KEY is safer")


@app.command("rotate-master-key")
def rotate_master_key(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Re-wrap every workspace key under a new master key, in one transaction.

    Keys kept in the keyring or master.key are replaced there. A key given by BOTCTL_MASTER_KEY or a
    systemd credential cannot be updated by botctl: the new key is printed once, to put in its place.
    """
    from botctl.errors import UsageError

    output.use_json(json_out)
    a = context.app(ctx, create=False)
    source = a.vault.master.source
    if source in ("env", "systemd") and not yes:
        raise UsageError(
            f"the master key comes from {a.vault.master.location}; the new key will be printed once and must replace it.",
            hint="Re-run with --yes when you are ready to store it.",
        )
    new, version = a.vault.rotate_master_key()
    a.audit("vault.master_key_rotated", detail={"key_version": version, "key_source": new.source})
    from botctl import masterkey

    shown = masterkey.encode(new.key) if source in ("env", "systemd") else None
    if json_out:
        output.emit_json({"key_version": version, "source": new.source, "location": new.location,
                          "new_master_key": shown})
        return
    output.status(f"master key rotated to version {version}; every workspace key was re-wrapped.")
    if shown:
        where = "BOTCTL_MASTER_KEY" if source == "env" else new.location
        output.status(f"The old key no longer opens this vault. Put this new key in {where} now (shown once):")
        print(shown)
    else:
        output.status(f"the new key is stored in {new.location}; the old one no longer opens anything.")
