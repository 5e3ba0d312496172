"""The choices behind the edge's isolation, without starting anything (the live proof: test_edge_escape)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from botctl import isolation
from botctl.errors import BotctlError
from botctld import confine


def test_an_import_root_that_contains_or_lies_in_a_denied_path_is_left_out(tmp_path, monkeypatch):
    home = tmp_path / "site" / "botctl-home"
    home.mkdir(parents=True)
    inside = home / "lib"
    inside.mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), str(inside), *sys.path])
    allowed, refused = confine.read_roots([str(home)])
    assert Path(os.path.realpath(tmp_path / "site")) in refused and Path(os.path.realpath(inside)) in refused
    assert not [
        p
        for p in allowed
        if p == home or home.resolve().is_relative_to(p) or p.is_relative_to(home.resolve())
    ]
    assert Path("/") not in allowed


def test_asked_for_landlock_without_it_the_edge_refuses_to_serve():
    """Fail closed: in a child process (confinement is irreversible) with the ABI probe answering 0."""
    code = (
        "import botctld.confine as c\n"
        "c.landlock_abi = lambda: 0\n"
        "try:\n    c.confine(deny=[], required=True)\nexcept c.ConfinementError as e:\n    print('refused:', e)\n"
        "print(c.confine(deny=[], required=False))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused: this kernel has no Landlock") and "'landlock': False" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="the root rules")
@pytest.mark.parametrize("requested", ["landlock", "none"])
def test_as_root_the_edge_never_runs_as_root(requested):
    with pytest.raises(BotctlError) as e:
        isolation.plan(requested)
    assert "as root" in e.value.message and "--isolation auto" in (e.value.hint or "")


@pytest.mark.skipif(os.geteuid() == 0, reason="the ordinary user's rules")
def test_uid_isolation_needs_root():
    with pytest.raises(BotctlError) as e:
        isolation.plan("uid")
    assert e.value.exit_code == 4


def test_an_unknown_choice_is_a_usage_error():
    with pytest.raises(BotctlError) as e:
        isolation.plan("chroot")
    assert e.value.code == "invalid_input"


def test_each_home_gets_its_own_socket_folder(tmp_path):
    a, b = isolation.runtime_socket(tmp_path / "a"), isolation.runtime_socket(tmp_path / "b")
    assert a != b and a.parent.parent == b.parent.parent == isolation.RUNTIME_ROOT
