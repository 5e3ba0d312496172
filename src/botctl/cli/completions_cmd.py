import typer

from botctl.cli import context

app = context.group(no_args_is_help=True)
SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> str:
    """The completion script for `shell`, from the CLI itself (typer's completion classes)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "botctl"],
        env={**os.environ, "_BOTCTL_COMPLETE": f"source_{shell}"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


@app.command("completions")
def completions(shell: str = typer.Argument(..., metavar="SHELL", help="bash | zsh | fish")) -> None:
    """Print the shell completion script (also committed under completions/).

    bash: botctl completions bash > ~/.local/share/bash-completion/completions/botctl
    zsh:  botctl completions zsh > "${fpath[1]}/_botctl"
    fish: botctl completions fish > ~/.config/fish/completions/botctl.fish
    """
    import sys

    from botctl.errors import UsageError

    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r}.", hint="Use bash, zsh or fish.")
    sys.stdout.write(script(shell))
