"""The shipped systemd units: the edge is another user who cannot see the home, and the hardening
scores in the README are what `systemd-analyze security` says of them (run where systemd is installed;
the functional check of the units' command lines is tests/test_edge_escape.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "daemon" / "systemd"


def directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for line in (UNITS / name).read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out[key].append(value)
    return out


def test_edge_unit_is_another_user_without_the_home():
    provider, edge = directives("botctl-provider.service"), directives("botctl-edge.service")
    assert provider["User"] == ["botctl"] and edge["User"] == ["botctl-edge"]
    assert "botctl-edge" in provider["SupplementaryGroups"]
    inaccessible = " ".join(edge["InaccessiblePaths"])
    assert "/var/lib/botctl" in inaccessible and "/etc/botctl" in inaccessible
    assert not edge.get("LoadCredential") and provider["LoadCredential"] == [
        "botctl-master-key:/etc/botctl/master.key"
    ]
    for unit in (provider, edge):
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectHome": "yes",
            "ProtectSystem": "strict",
            "MemoryDenyWriteExecute": "yes",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "CapabilityBoundingSet": "",
            "ProtectProc": "invisible",
        }.items():
            assert unit[key] == [value], (key, unit[key])
        assert "@system-service" in unit["SystemCallFilter"]
    assert "landlock_create_ruleset landlock_add_rule landlock_restrict_self" in edge["SystemCallFilter"]
    # The provider's socket is where the edge unit looks for it, and shared with the edge's group only.
    provider_exec, edge_exec = provider["ExecStart"][0].split(), edge["ExecStart"][0].split()
    sock = provider_exec[provider_exec.index("--socket") + 1]
    assert sock == edge_exec[edge_exec.index("--socket") + 1] and sock.startswith("/run/botctl/")
    assert provider_exec[provider_exec.index("--socket-group") + 1] == "botctl-edge"
    assert provider["RuntimeDirectory"] == ["botctl"] and provider["RuntimeDirectoryMode"] == ["0750"]
    assert edge_exec[edge_exec.index("--sandbox") + 1] == "landlock"


def test_remote_edge_unit_holds_only_its_certificates_and_reaches_only_the_provider():
    edge = directives("botctl-edge-remote.service")
    assert edge["User"] == ["botctl-edge"] and not edge.get("Requires")
    creds = [c.split(":", 1)[1] for c in edge["LoadCredential"]]
    assert all(c.startswith("/etc/botctl-edge/") and c.endswith((".crt", ".key")) for c in creds), creds
    argv = edge["ExecStart"][0].split()
    assert argv[0].endswith("botctld") and "--socket" not in argv
    provider = argv[argv.index("--provider") + 1]
    assert provider.startswith("https://")
    for flag, name in (("--cert", "edge.crt"), ("--key", "edge.key"), ("--ca", "ca.crt")):
        assert argv[argv.index(flag) + 1] == f"%d/{name}"  # the credentials folder
    assert argv[argv.index("--sandbox") + 1] == "landlock"
    host = provider.removeprefix("https://").rsplit(":", 1)[0]
    assert edge["IPAddressAllow"] == [f"localhost {host}"] and edge["IPAddressDeny"] == ["any"]
    assert "/etc/botctl-edge" in " ".join(edge["InaccessiblePaths"])
    assert "landlock_create_ruleset landlock_add_rule landlock_restrict_self" in edge["SystemCallFilter"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(
    "unit, label",
    [
        ("botctl-provider.service", "provider"),
        ("botctl-edge.service", "edge"),
        ("botctl-edge-remote.service", "remote edge"),
    ],
)
def test_security_score_is_what_the_readme_says(unit, label):
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNITS / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert found, proc.stdout[-500:] + proc.stderr[-500:]
    score = float(found.group(1))
    claimed = re.search(rf"\*\*(\d+\.\d) OK\*\* \({label}\)", (REPO / "README.md").read_text())
    assert claimed, "the README states the score"
    assert score <= float(claimed.group(1)), f"{unit} scores {score}, the README says {claimed.group(1)}"
