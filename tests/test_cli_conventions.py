"""CLI conventions users expect from gh, hatch, httpie (issue #20): examples in every --help, whole
summaries, "Did you mean ...?", global options anywhere, a TSV header on request."""

from __future__ import annotations

import typer.main

from botctl.cli import argv, examples, lazy
from botctl.cli.main import app


def _paths() -> list[str]:
    """Every command path, groups included ("workspace", "workspace create", "audit sink add")."""
    root = typer.main.get_command(app)
    out: list[str] = []

    def walk(group, prefix: str) -> None:  # noqa: ANN001
        for name in group.list_commands(None):
            cmd = group.get_command(None, name)
            path = f"{prefix}{name}"
            out.append(path)
            if getattr(cmd, "commands", None):
                walk(cmd, path + " ")

    walk(root, "")
    return out


def test_every_command_has_examples(cli):
    paths = _paths()
    assert len(paths) > 50
    missing = [p for p in paths if p not in examples.EXAMPLES]
    assert missing == [], f"add examples for these in botctl/cli/examples.py: {missing}"
    stale = [p for p in examples.EXAMPLES if p not in paths]
    assert stale == [], f"examples for commands that do not exist: {stale}"
    for path in ("workspace delete", "connect", "audit", "audit sink add", "doctor"):
        r = cli(*path.split(), "--help")
        assert r.code == 0 and "Examples:\n" in r.out, path
        assert examples.EXAMPLES[path][0] in r.out  # as typed, not re-wrapped


def test_examples_run_commands_that_exist():
    paths = set(_paths())
    for path, lines in examples.EXAMPLES.items():
        for line in lines:
            words = line.split("botctl ", 1)[1].split()
            named = " ".join(w for w in words[:3] if not w.startswith("-"))
            assert any(named == p or named.startswith(p + " ") for p in paths), (path, line)


def test_command_summaries_are_not_cut(cli):
    for group in ("workspace", "connections", "daemon", "vault", "audit", "identity", "connectors"):
        r = cli(group, "--help")
        listing = r.out[r.out.index("Commands:") :]
        assert "..." not in listing and "…" not in listing.replace("req_…", ""), group


def test_did_you_mean(home, cli):
    r = cli("workspce", "list")
    assert r.code == 2 and "Did you mean 'workspace'?" in r.err
    r = cli("workspace", "lsit")
    assert r.code == 2 and "Did you mean 'list'?" in r.err
    r = cli("frobnicate")
    assert r.code == 2 and "Did you mean" not in r.err
    assert cli("workspace", "create", "acme").code == 0
    r = cli("workspace", "show", "acm")
    assert r.code == 3 and "Did you mean 'acme'?" in r.err
    r = cli("connectors", "show", "strpe")
    assert r.code == 3 and "Did you mean 'stripe'?" in r.err
    r = cli("actions", "run", "stripe.list_invoices", "-w", "acme")
    assert r.code == 23 and "Did you mean 'stripe.list_my_invoices'?" in r.err


def test_global_options_after_the_subcommand(cli, tmp_path):
    other = tmp_path / "elsewhere"
    assert cli("workspace", "create", "acme", "--home", str(other), "-q").code == 0
    r = cli("workspace", "list", "--json", f"--home={other}")
    assert r.code == 0 and [w["name"] for w in r.json()] == ["acme"]
    r = cli("--json", "--home", str(other), "workspace", "list")
    assert r.code == 0 and [w["name"] for w in r.json()] == ["acme"]
    r = cli("workspace", "create", "beta", "--home", str(other), "--quiet")
    assert r.code == 0 and r.err == ""
    # after `--` nothing moves; a subcommand's own -q stays its own
    assert argv.hoist(["knowledge", "ask", "-w", "acme", "--", "-q"]) == [
        "knowledge",
        "ask",
        "-w",
        "acme",
        "--",
        "-q",
    ]
    assert argv.hoist(["sandbox", "serve", "-q"]) == ["sandbox", "serve", "-q"]
    assert argv.hoist(["--home", "h", "audit", "-q"]) == ["--home", "h", "-q", "audit"]


def test_tsv_header_on_request(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    r = cli("workspace", "list")
    assert r.out.startswith("acme\t")
    r = cli("workspace", "list", "--header")
    assert r.out.splitlines()[0] == "NAME\tPLAN\tORIGINS\tCREATED" and r.out.splitlines()[1].startswith(
        "acme\t"
    )


def test_actions_list_cells_say_what_they_mean(home, cli):
    r = cli("actions", "list", "--header")
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert lines[0][:3] == ["ACTION", "FOR", "RETRY"]
    invoices = next(cells for cells in lines if cells[0] == "stripe.list_my_invoices")
    assert invoices[1] == "customer" and invoices[2] in ("idempotent", "not-idempotent")
    assert not any(cells[1] in ("yes", "no") for cells in lines[1:])


def test_help_only_loads_examples_when_asked(cli):
    assert cli("workspace", "list", "--json").code in (0, 1)
    assert lazy.help_asked is False


def _on_a_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run botctl with stdin and stderr on a pseudo-terminal, answer its question, return (code, what it said)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", *args],
        stdin=slave,
        stderr=slave,
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    os.close(slave)
    said = b""
    deadline = time.monotonic() + 30
    try:
        while b"[y/N]" not in said and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                said += os.read(master, 4096)
        os.write(master, answer.encode() + b"\n")
        proc.wait(timeout=30)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, said.decode(errors="replace")


def test_destructive_commands_ask_on_a_terminal_and_need_yes_without_one(home, cli):
    assert cli("workspace", "create", "acme").code == 0
    assert cli("workspace", "create", "beta").code == 0
    # No terminal: refused, nothing changed, the command to re-run named.
    r = cli("workspace", "delete", "acme")
    assert r.code == 2 and "botctl workspace delete acme --yes" in r.err
    r = cli("vault", "rotate-master-key")
    assert r.code == 2 and "botctl vault rotate-master-key --yes" in r.err
    assert cli("vault", "status", "--json").json()["master_key"]["version"] == 1
    # A terminal: asked; "n" changes nothing, "y" goes ahead.
    code, said = _on_a_terminal(["workspace", "delete", "acme"], "n")
    assert code == 2 and "Delete workspace 'acme'" in said and "[y/N]" in said and "not confirmed" in said
    assert [w["name"] for w in cli("workspace", "list", "--json").json()] == ["acme", "beta"]
    code, said = _on_a_terminal(["workspace", "delete", "acme"], "y")
    assert code == 0, said
    assert [w["name"] for w in cli("workspace", "list", "--json").json()] == ["beta"]
    code, said = _on_a_terminal(["vault", "rotate-master-key"], "y")
    assert code == 0 and "rotation complete" in said
    assert cli("vault", "status", "--json").json()["master_key"]["version"] == 2
    # --yes never asks; --json never asks either (a script reads the answer)
    assert cli("workspace", "delete", "beta", "--yes").code == 0


def _complete(words: str) -> list[str]:
    import os
    import subprocess
    import sys

    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {**os.environ, "_BOTCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return subprocess.run(
        [sys.executable, "-m", "botctl"], env=env, capture_output=True, text=True
    ).stdout.split()


def test_completion_of_actions_outcomes_events_documents_and_home(home, cli, tmp_path):
    from pathlib import Path

    mine = _complete("botctl actions run stripe.list_my")
    assert "stripe.list_my_invoices" in mine and all(a.startswith("stripe.list_my") for a in mine)
    stripe = _complete("botctl actions run stripe.")
    assert "stripe.list_my_invoices" in stripe and all(a.startswith("stripe.") for a in stripe)
    assert _complete("botctl audit --outcome de") == ["denied"]
    assert cli("workspace", "create", "acme").code == 0
    assert cli("workspace", "set-plan", "acme", "pro").code == 0
    assert _complete("botctl audit --event workspace.") == ["workspace.created", "workspace.plan_changed"]
    help_center = Path(__file__).resolve().parent.parent / "examples" / "help-center"
    assert cli("knowledge", "add", "-w", "acme", str(help_center)).code == 0
    assert _complete("botctl knowledge remove -w acme s") == ["shipping.md"]
    assert _complete("botctl knowledge remove -w acme ") == ["returns.md", "shipping.md"]
    # --home on the line wins over BOTCTL_HOME, before the command or after it
    other = tmp_path / "other-home"
    assert cli("--home", str(other), "workspace", "create", "elsewhere").code == 0
    assert _complete("botctl workspace show ") == ["acme"]
    assert _complete(f"botctl --home {other} workspace show ") == ["elsewhere"]
    assert _complete(f"botctl workspace show --home {other} ") == ["elsewhere"]
    assert _complete(f"botctl --home {other} audit --event workspace.") == ["workspace.created"]
    assert not other.joinpath("nothing").exists()
    assert _complete(f"botctl --home {tmp_path / 'missing'} workspace show ") == []
    assert not (tmp_path / "missing").exists()


def _tty_output(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """stdout and stderr of botctl when both are terminals (pseudo-terminals)."""
    import os
    import pty
    import select
    import subprocess
    import sys

    out_m, out_s = pty.openpty()
    err_m, err_s = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "botctl", *args],
        stdin=subprocess.DEVNULL,
        stdout=out_s,
        stderr=err_s,
        env={**os.environ, "COLUMNS": "200", **env},
    )
    os.close(out_s)
    os.close(err_s)
    got = {out_m: b"", err_m: b""}
    open_fds = set(got)
    while open_fds:
        ready = select.select(list(open_fds), [], [], 10)[0]
        if not ready:
            break
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk:
                got[fd] += chunk
            else:
                open_fds.discard(fd)
    proc.wait(timeout=30)
    os.close(out_m)
    os.close(err_m)
    return got[out_m].decode(errors="replace"), got[err_m].decode(errors="replace")


def test_colour_means_something_and_is_off_with_no_color_or_piped(home, cli):
    assert cli("workspace", "create", "acme").code == 0  # free plan: an action is refused (denied)
    assert (
        cli("actions", "run", "stripe.list_my_invoices", "-w", "acme", "--as-email", "ada@example.com").code
        == 23
    )
    red = "\x1b[31m"
    out, err = _tty_output(["audit"], {"NO_COLOR": ""})
    assert red in out and "denied" in out  # the refused action's outcome stands out
    line_ok = next(line for line in out.splitlines() if "workspace.created" in line)
    assert "\x1b[3" not in line_ok.replace("\x1b[1m", "")  # "ok" is not decorated
    out, err = _tty_output(["actions", "run", "nope.nothing", "-w", "acme"], {"NO_COLOR": ""})
    assert f"{red}error:" in err
    out, err = _tty_output(["doctor"], {"NO_COLOR": ""})
    assert "\x1b[33mWARN" in out  # the plain-file key
    import re

    colour = re.compile(r"\x1b\[(?:\d+;)*3\d")  # a foreground colour (bold headers are not colour)
    assert colour.search(_tty_output(["audit"], {"NO_COLOR": ""})[0])
    for env in ({"NO_COLOR": "1"}, {"NO_COLOR": "", "TERM": "dumb"}):
        out, err = _tty_output(["audit"], env)
        assert not colour.search(out + err), env
        out, err = _tty_output(["actions", "run", "nope.nothing", "-w", "acme"], env)
        assert "error:" in err and not colour.search(err), env
    r = cli("audit")  # piped (captured): plain tab-separated text
    assert "\x1b[" not in r.out + r.err and "\tdenied\t" in r.out
