"""The edge imports nothing from botctl: not the vault, not the store, not even botctl itself."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import botctld

EDGE = Path(botctld.__file__).parent


def test_no_botctl_import_in_source():
    offenders = []
    for path in EDGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "botctl" or n.startswith("botctl.")]
    assert offenders == []


def test_no_botctl_module_loaded_at_runtime(tmp_path):
    probe = (
        "import json, sys, botctld.app, botctld.__main__\n"
        "app = botctld.app.create_app(sys.argv[1])\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "none.sock")], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out)
    assert not [m for m in loaded if m == "botctl" or m.startswith("botctl.")]
    assert not {"cryptography", "jwt", "sqlite3", "keyring"} & {m.split(".")[0] for m in loaded}


def test_openapi_is_valid_and_covers_every_route(tmp_path):
    from openapi_spec_validator import validate

    from botctld.app import create_app
    from botctld.openapi import spec

    validate(spec())
    app = create_app(str(tmp_path / "none.sock"))
    routes = {(r.path, m.lower()) for r in app.app.routes for m in (r.methods or []) if m != "HEAD"}
    documented = {(p, m) for p, ops in spec()["paths"].items() for m in ops}
    routes.discard(("/metrics", "get"))  # served only on the --metrics-port listener, not the visitors' API
    assert routes == documented, routes ^ documented
    json.dumps(spec())
