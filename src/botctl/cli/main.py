"""The `botctl` command: global options, command groups, and the one place errors become exit codes."""

import sys

import typer

from botctl import __version__
from botctl.cli.lazy import LazyGroup

app = typer.Typer(
    name="botctl",
    cls=LazyGroup,
    help="Connect a support chatbot to your tools without giving it your credentials.",
    epilog="\b\nExamples:\n  botctl demo\n  botctl workspace create acme --plan pro\n"
    "  botctl workspace list --json --home ~/botctl-home   # global options may follow the command\n"
    "  botctl <command> --help                              # each command's own examples",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"botctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    home: str = typer.Option(
        None,
        "--home",
        envvar="BOTCTL_HOME",
        metavar="PATH",
        help="State directory (default: BOTCTL_HOME, else the user data dir).",
    ),
    debug: bool = typer.Option(False, "--debug", envvar="BOTCTL_DEBUG", help="Show tracebacks on errors."),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        envvar="BOTCTL_QUIET",
        help="No status lines on stderr (data and errors still print).",
    ),
    header: bool = typer.Option(
        False, "--header", help="Tab-separated output (piped) starts with a line of column names."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Global options may also follow the command: `botctl workspace list -q --home PATH`."""
    ctx.obj = {"home": home, "debug": debug}
    if quiet or header:
        from botctl.cli import output

        output.quiet = output.quiet or quiet
        output.header = header


# Command groups are registered in botctl.cli.lazy.COMMANDS and imported on first use.


def run(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; turn our errors into one or two lines and a documented exit code."""
    import os

    from botctl.cli import argv as argv_mod
    from botctl.cli import lazy, output
    from botctl.errors import EXIT_INTERRUPTED, EXIT_USAGE, BotctlError

    os.umask(0o077)  # every file botctl creates is private, whatever the caller's umask
    output.use_json(False)
    output.quiet = False
    output.header = False
    args = argv_mod.hoist(sys.argv[1:] if argv is None else list(argv))
    lazy.help_asked = "-h" in args or "--help" in args or len(args) <= 1
    debug = "--debug" in args or os.environ.get("BOTCTL_DEBUG", "") not in ("", "0")
    if os.environ.get("_BOTCTL_COMPLETE"):  # a TAB press: register typer's shell classes (only then)
        from typer.completion import completion_init

        completion_init()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="botctl", standalone_mode=False)
        try:
            sys.stdout.flush()  # what is still buffered, while a closed pipe can still be told apart
        except BrokenPipeError:
            raise lazy.OutputClosed() from None
    except BotctlError as exc:
        if debug:
            raise
        output.error(exc.message, exc.hint, code=exc.code)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt, lazy.Interrupted):
        sys.stderr.write("\ninterrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except (
        lazy.OutputClosed
    ):  # the reader of our stdout is gone: the rest has nowhere to go, and that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:  # usage errors (typer's vendored click) and anything unexpected
        if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 0) or EXIT_USAGE)
        if debug:
            raise
        sys.stderr.write(f"error: unexpected {type(exc).__name__}; rerun with --debug for details.\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
