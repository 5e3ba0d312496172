"""The README's tour, followed literally: its shell blocks, in order, in one shell, against the sandbox.

A newcomer copies the blocks of "## A tour" into one terminal, top to bottom; so does this test (one
bash, a temporary HOME, botctl on PATH, loopback only). Each command must exit as the README says:
0, or the code its comment names ("(exit 23)"). The only liberties taken are the ones a person takes
without noticing: the sandbox's and the edge's ports are free ones instead of 8790/8765 (the edge's
through `BOTCTL_PORT`, which the README documents), a command left in the background is waited for
until it listens, and `audit -f` (which follows until Ctrl-C) gets a Ctrl-C after two seconds — and
must then exit 130, as an interrupted command does.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_kit import free_port

REPO = Path(__file__).resolve().parent.parent


def tour_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the tour (from "## A tour" to the next top-level section), in order."""
    start = readme.index("\n## A tour")
    end = readme.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", readme[start:end], flags=re.S)


def commands(block: str) -> list[str]:
    """One entry per command: continuation lines joined, blank lines and comment-only lines dropped."""
    out: list[str] = []
    pending = ""
    for line in block.splitlines():
        if pending:
            line = pending + "\n" + line
            pending = ""
        if line.rstrip().endswith("\\"):
            pending = line
            continue
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    assert not pending, f"a block ends with a continuation line: {pending!r}"
    return out


def expected_exit(command: str) -> int:
    found = re.search(r"#.*\(exit (\d+)\)", command)
    return int(found.group(1)) if found else 0


def script(blocks: list[str], sandbox_port: int, edge_port: int) -> str:
    lines = [
        "set -u",
        "wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null "
        '&& return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }',
    ]
    for n, block in enumerate(blocks, 1):
        for cmd in commands(block.replace("8790", str(sandbox_port)).replace("8765", str(edge_port))):
            label = shlex.quote(f"block {n}: {cmd.splitlines()[0].split('  #')[0].strip()}")
            lines.append(f'echo "### "{label}; echo "### "{label} >&2')
            code = cmd.split("  #")[0].rstrip() if "\n" not in cmd else cmd
            if code.endswith("&"):
                if "sandbox serve" in code:
                    code = code[:-1].rstrip() + f" --port {sandbox_port} &"
                lines += [code, f"wait_port {sandbox_port} || exit 99"]
                continue
            want = expected_exit(cmd)
            if re.search(r"\s-f\b", code) and "audit" in code:  # follows until Ctrl-C
                code, want = f"timeout -s INT --preserve-status 2 {code}", 130
            lines += [
                code,
                "rc=$?",
                f'if [ $rc -ne {want} ]; then echo "FAILED: exit $rc, '
                f'the README says {want}: "{label} >&2; exit 98; fi',
            ]
    lines.append("echo TOUR-DONE")
    return "\n".join(lines) + "\n"


def test_tour_blocks_are_found():
    blocks = tour_blocks((REPO / "README.md").read_text())
    cmds = [c for b in blocks for c in commands(b)]
    assert len(blocks) >= 5 and len(cmds) >= 30
    assert cmds[0].startswith("export BOTCTL_HOME=")
    assert any("sandbox serve" in c and c.split("#")[0].rstrip().endswith("&") for c in cmds)
    assert expected_exit("botctl x \\\n   y  # refused, forbidden (exit 23)") == 23


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=[pytest.mark.slow, pytest.mark.timeout(900)])]
)
def test_the_readme_tour_runs_end_to_end(tmp_path, monkeypatch, request, backend):
    """On PostgreSQL: `botctl init --database URL` first (a fresh database), then the same tour."""
    blocks = tour_blocks((REPO / "README.md").read_text())
    sandbox_port, edge_port = free_port(), free_port()
    user_home = tmp_path / "user"
    bindir = tmp_path / "bin"
    user_home.mkdir()
    bindir.mkdir()
    wrapper = bindir / "botctl"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m botctl "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BOTCTL_") and k not in {"CI", "CREDENTIALS_DIRECTORY"}
    }
    env.update(
        HOME=str(user_home),
        PATH=f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}",
        BOTCTL_NO_KEYRING="1",
        BOTCTL_PORT=str(edge_port),
        NO_COLOR="1",
    )
    text = script(blocks, sandbox_port, edge_port)
    if backend == "postgresql":
        lines = text.split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("export BOTCTL_HOME="))
        lines.insert(
            at + 1, f"botctl init --database {shlex.quote(request.getfixturevalue('pg_url'))} || exit 97"
        )
        text = "\n".join(lines)
    (tmp_path / "tour.sh").write_text(text)
    proc = subprocess.Popen(
        ["bash", str(tmp_path / "tour.sh")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # On PostgreSQL every command also imports the driver and connects (about 1 s more each, measured).
        out, err = proc.communicate(timeout=240 if backend == "sqlite" else 800)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        # Whatever the tour left running (it stops both itself at the end): the daemon, then the sandbox.
        subprocess.run(
            [sys.executable, "-m", "botctl", "--home", str(user_home / "botctl-home"), "daemon", "stop"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(["pkill", "-g", str(proc.pid)], capture_output=True)
    (tmp_path / "tour.out").write_text(out)
    (tmp_path / "tour.err").write_text(err)
    assert proc.returncode == 0 and out.rstrip().endswith("TOUR-DONE"), f"tour failed:\n{err[-4000:]}"
    sections = dict(part.split("\n", 1) for part in out.split("### ")[1:] if "\n" in part)

    def output_of(prefix: str) -> str:
        return next(v for k, v in sections.items() if prefix in k)

    assert '"grounded": false' in output_of("Can I pay with goats?")
    assert "3–5 business days" in output_of("How long does standard shipping take?")
    orders = output_of("curl -s -X POST")
    assert '"ok":true' in orders.replace(" ", "") and "not_connected" not in orders
    assert "INFO:" not in err, "the sandbox's access log is opt-in"
    assert "Traceback" not in err
