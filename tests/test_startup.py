"""Start-up cost is a feature: the common commands must not import the heavy libraries."""

import json
import subprocess
import sys

import pytest

HEAVY = {
    "httpx",
    "rich",
    "keyring",
    "uvicorn",
    "starlette",
    "jsonschema",
    "cryptography",
    "jwt",
    "sqlite_utils",
    "platformdirs",
    "pydantic",
    "psycopg",
}

PROBE = """
import json, sys
from botctl.cli.main import run
try:
    run(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["workspace", "list", "--json"], ["--help"], ["workspace", "--help"], ["audit", "--json", "-n", "5"]],
)
def test_common_commands_stay_light(home, cli, args):
    assert cli("workspace", "create", "acme").code == 0
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert not (loaded & HEAVY), loaded & HEAVY


def test_completion_is_light_and_works(home):
    env_args = {"_BOTCTL_COMPLETE": "complete_bash", "COMP_WORDS": "botctl workspace l", "COMP_CWORD": "2"}
    import os

    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env={**os.environ, **env_args}
    )
    assert proc.stdout.split() == ["list"]
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert not (loaded & HEAVY)
