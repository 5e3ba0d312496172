import sys

import typer

from botctl.cli import context, output

app = context.group()


@app.command("status")
def status(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Which master-key source is in use, schema version, counts and key versions."""
    from botctl import masterkey
    from botctl.errors import BotctlError
    from botctl.vault import Vault

    output.use_json(json_out)
    home = context.home(ctx)
    vault = Vault.open_readonly(home)
    if vault is None:
        data = {"home": str(home.path), "initialized": False}
        if json_out:
            output.emit_json(data)
        raise BotctlError(
            f"no botctl home at {home.path}.",
            code="not_initialised",
            hint="Run `botctl init` (or pass --home / set BOTCTL_HOME to an existing home).",
        )
    with vault:
        data = vault.status()
        problem = hint = None
        try:
            found = masterkey.find(home, warn=False)
        except BotctlError as exc:  # there is a key, but it cannot be used (loose permissions, garbled)
            found, problem, hint = None, exc.message, exc.hint
        rotation, opens = masterkey.inspect_pending(home, found, vault._meta("kcv"))
        if found is None:
            if problem is None:
                problem = "no master key found"
                hint = "Set BOTCTL_MASTER_KEY, or restore master.key / the keyring entry this vault was set up with."
        elif not opens:
            problem = f"the master key from {found.location} does not open this vault"
            hint = "Use the current key (it may have been rotated)."

        data["master_key"].update(
            source=found.source if found else None,
            location=found.location if found else None,
            opens_vault=found is not None and problem is None,
        )
        data["pending_rotation"] = rotation.as_dict() if rotation else None
        data["problem"] = problem
    from botctl.errors import MasterKeyError

    unusable = MasterKeyError(problem, hint=hint) if problem else None
    if json_out:
        output.emit_json(data)
        if unusable:
            raise typer.Exit(unusable.exit_code)
        return
    mk = data["master_key"]
    if mk["source"]:
        key_line = f"{mk['source']} ({mk['location']}), version {mk['version']}"
    else:
        key_line = f"{'not usable' if problem and problem != 'no master key found' else 'missing'}, version {mk['version']}"
    output.fields(
        [
            ("home", data["home"]),
            (
                "database",
                f"{data['database']['backend']} {data['database']['server_version']} "
                f"({data['database']['location']})",
            ),
            ("schema", f"{data['schema_version']} (this botctl: {data['schema_latest']})"),
            ("master key", key_line),
            ("workspaces", data["workspaces"]),
            ("secrets", data["secrets"]),
            (
                "workspace keys",
                ", ".join(f"{k} v{v}" for k, v in data["workspace_key_versions"].items()) or "-",
            ),
            *(
                [("pending rotation", f"{rotation.state} ({rotation.location})")]
                if rotation is not None
                else []
            ),
        ]
    )
    if rotation is not None and rotation.state == "committed":
        output.warn(f"{rotation.message}. {rotation.what_to_do}")
    elif rotation is not None:
        output.status(f"{rotation.message}.")
    if not problem and mk["source"] == "file":
        output.warn("the master key is in a plain file; an OS keyring or BOTCTL_MASTER_KEY is safer")
    if unusable:
        raise unusable  # exit 5, what is wrong and what to do


@app.command("rotate-master-key")
def rotate_master_key(
    ctx: typer.Context,
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Do not ask (needed without a terminal, and when a key is generated and printed).",
    ),
    new_key_stdin: bool = typer.Option(
        False, "--new-key-stdin", help="Read the new key (base64, one line) from stdin."
    ),
    new_key_file: str = typer.Option(
        None, "--new-key-file", metavar="PATH", help="Read the new key (base64) from a file."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Re-wrap every workspace key under a new master key, in one transaction with its audit record.

    Keys kept in the keyring or master.key are replaced there. A key given by BOTCTL_MASTER_KEY or a
    systemd credential cannot be updated by botctl: give the new key with --new-key-stdin or
    --new-key-file, or let botctl generate it (--yes): it is kept in master.key.next and printed once
    before anything is re-wrapped. Keep the old key until the command says the rotation is complete.
    """
    from botctl import masterkey
    from botctl.errors import UsageError

    output.use_json(json_out)
    if new_key_stdin and new_key_file is not None:
        raise UsageError("give the new key once: --new-key-stdin or --new-key-file.")
    supplied = _read_new_key(new_key_stdin, new_key_file)
    a = context.app(ctx, create=False)
    current = a.vault.master
    by_hand = current.source not in masterkey.ROTATION_SOURCES_KEPT  # env / systemd
    where = masterkey.source_description(current)
    if by_hand and supplied is None and not yes:
        raise UsageError(
            f"the master key comes from {where}; a generated new key is printed once and must replace it there.",
            hint="Re-run with --yes when you are ready to store it, or give your own key with "
            "--new-key-stdin / --new-key-file.",
        )
    context.confirm(
        f"Re-wrap every workspace key under a new master key (the old key in {where} will no longer "
        "open this vault)?",
        yes=yes,
        command="botctl vault rotate-master-key",
    )
    shown: dict[str, object] = {}

    def announce(key: bytes, pending: str | None) -> None:
        shown["key"], shown["pending"] = key, pending
        if by_hand and supplied is None and not json_out:
            shown["printed"] = True
            output.status(
                f"New master key for {where} (shown once; kept in {pending} until {where} holds it):"
            )
            sys.stdout.write(masterkey.encode(key) + "\n")
            sys.stdout.flush()  # on the terminal (or in the pipe) before anything is re-wrapped
            sys.stderr.write(
                f"Keep the old key in {where} until this command says the rotation is complete.\n"
            )
            sys.stderr.flush()

    def record(rotation: dict) -> None:
        a.audit(
            "vault.master_key_rotated",
            detail={
                **rotation,
                "key_source": current.source,
                "new_key": "supplied" if supplied is not None else "generated",
            },
        )

    try:
        new, version = a.vault.rotate_master_key(record, new_key=supplied, announce=announce)
    except BaseException as exc:
        _explain_interrupted(a, exc, where, by_hand, supplied is not None, shown)
        raise
    printed = masterkey.encode(new.key) if by_hand and supplied is None else None
    if json_out:
        output.emit_json(
            {
                "key_version": version,
                "source": new.source,
                "location": new.location,
                "new_master_key": printed,
                "pending": shown.get("pending") if by_hand else None,
                "complete": True,
            }
        )
        return
    if not by_hand:
        output.status(
            f"master key rotation complete (version {version}); every workspace key was re-wrapped. "
            f"The new key is stored in {new.location}; the old one no longer opens anything."
        )
        return
    what = "the new key printed above" if printed else "the key you supplied"
    sys.stderr.write(
        f"master key rotation complete (version {version}): put {what} in {where} now; the old key "
        "no longer opens this vault.\n"
    )
    if printed:
        sys.stderr.write(
            f"Until {where} holds it, botctl opens the vault with {shown.get('pending')}, and deletes "
            "that file once it does.\n"
        )


def _read_new_key(from_stdin: bool, path: str | None) -> bytes | None:
    from botctl import masterkey

    if from_stdin:
        return masterkey.decode(sys.stdin.readline(), origin="the key on stdin")
    if path is not None:
        from botctl.errors import UsageError

        try:
            with open(path, "rb") as fh:
                data = fh.read(4096)
        except OSError as exc:
            raise UsageError(f"cannot read --new-key-file {path}: {exc.strerror}.") from None
        return masterkey.decode(data.decode("ascii", "replace"), origin=path)
    return None


def _explain_interrupted(
    a, exc: BaseException, where: str, by_hand: bool, supplied: bool, shown: dict
) -> None:
    """The rotation stopped (error, Ctrl-C): say which key opens the vault now, from the vault itself."""
    from botctl import crypto
    from botctl.errors import BotctlError

    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("interrupted.\n")
    key = shown.get("key")
    if key is None:
        return  # stopped before a new key existed: nothing changed
    try:
        committed = a.vault._meta("kcv") == crypto.key_check_value(key)  # type: ignore[arg-type]
    except BaseException:
        return
    if not committed:
        if by_hand and not supplied:
            which = "printed above " if shown.get("printed") else ""
            sys.stderr.write(
                f"The new master key {which}was NOT applied ({shown.get('pending')} was removed); "
                f"keep using the current key in {where}.\n"
            )
        elif not isinstance(exc, BotctlError):  # (botctl's own errors already say so)
            sys.stderr.write("Nothing was rotated; the current master key still opens the vault.\n")
        return
    if not by_hand:
        sys.stderr.write(
            f"The rotation was committed: the new key replaces the old one in {where} (if it has not "
            "yet, the next command that opens the vault finishes it).\n"
        )
    elif supplied:
        sys.stderr.write(
            f"The rotation was committed: only the key you supplied opens the vault now; put it in {where}.\n"
        )
    else:
        which = "printed above, also " if shown.get("printed") else ""
        sys.stderr.write(
            f"The rotation was committed: put the new key ({which}in {shown.get('pending')}) "
            f"in {where}; until then botctl opens the vault with that file.\n"
        )
