"""`botctl audit export` and `botctl audit export-key`: the log off the box, and what verifies it there."""

from __future__ import annotations

import typer

from botctl.cli import context, output


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("export-key")(export_key)


def export(
    ctx: typer.Context,
    since: str = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        help="Only records at or after WHEN (10m, 2h, 3d or an ISO date/time, UTC).",
    ),
    until: str = typer.Option(
        None, "--until", metavar="WHEN", help="Only records before WHEN (same forms as --since)."
    ),
    fmt: str = typer.Option(
        "ndjson",
        "--format",
        metavar="FORMAT",
        help="ndjson (the stored records, verifiable by "
        "tools/verify-audit.mjs) or csv (one row per record, for spreadsheets).",
    ),
    checkpoint: bool = typer.Option(
        False,
        "--checkpoint",
        help="End an NDJSON export with the checkpoint line a "
        "verifier needs to detect a truncated tail (reads vault.db; needs the master key).",
    ),
) -> None:
    """Stream the audit log (or a time range) to stdout as NDJSON or CSV, in bounded memory."""
    import sys

    from botctl.audit.export import FORMATS, read_checkpoint, write_export
    from botctl.durations import parse_since
    from botctl.errors import UsageError

    if fmt not in FORMATS:
        raise UsageError(
            f"--format {fmt!r} is not one of {', '.join(FORMATS)}.", hint="Use --format ndjson or csv."
        )
    if checkpoint and fmt != "ndjson":
        raise UsageError("--checkpoint goes with --format ndjson.", hint="Drop --checkpoint for CSV exports.")
    lo = parse_since(since) if since is not None else None
    hi = parse_since(until, flag="--until") if until is not None else None
    if lo is not None and hi is not None and hi <= lo:
        raise UsageError(f"--until ({hi}) is not after --since ({lo}).", hint="Give --until a later time.")
    cp = None
    if checkpoint:
        a = context.app(ctx, create=False)
        cp = read_checkpoint(a.vault.conn)
    home = context.home(ctx)
    try:
        n = write_export(home, sys.stdout.buffer, fmt=fmt, since=lo, until=hi, checkpoint=cp)
    except BrokenPipeError:  # `| head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    output.status(f"exported {n} record(s) as {fmt}")


def export_key(
    ctx: typer.Context,
    out: str = typer.Option(
        ..., "--out", metavar="FILE", help="A new file to write the key to (0600; never overwritten)."
    ),
) -> None:
    """Write the chain's MAC key (hex) to a new 0600 file, for an independent verifier.

    Whoever holds this key can verify the chain, and could also forge it: hand it only to the auditor
    who verifies, and keep it off the machine the log is on. The export is itself recorded in the log.
    """
    import os

    from botctl.errors import UsageError

    a = context.app(ctx, create=False)
    key = a.vault.audit_key()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(out, flags, 0o600)
    except FileExistsError:
        raise UsageError(
            f"{out!r} already exists; the key is written only to a new file.",
            hint="Give a path that does not exist yet.",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot create {out!r}: {exc.strerror or type(exc).__name__}.",
            hint="Give a writable path for --out.",
        ) from None
    try:
        # On record before the key leaves: a refused record (a broken chain) leaves no key file behind.
        a.audit("audit.key_exported", actor=a.actor, detail={"path": os.path.abspath(out)})
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(out)
        raise
    os.close(fd)
    output.status(
        f"wrote the audit chain key to {out}: it verifies the chain and could forge it; keep it "
        "with the auditor, off this machine"
    )
