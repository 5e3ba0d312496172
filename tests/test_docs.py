"""Docs that cannot drift: every command is in the README's CLI reference, every module in the architecture doc."""

import re
from pathlib import Path

import typer.main

from botctl.cli import lazy
from botctl.cli.main import app

REPO = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    root = typer.main.get_command(app)
    out = []
    for name in lazy.COMMANDS:
        cmd = root.get_command(None, name)
        subs = getattr(cmd, "commands", None)
        if subs:
            out += [f"botctl {name} {sub}" for sub in subs]
        else:
            out.append(f"botctl {name}")
    return out


def test_every_command_is_in_the_readme_reference():
    readme = (REPO / "README.md").read_text()
    reference = readme[readme.index("## CLI reference") :]
    missing = []
    for cmd in _commands():
        group, _, sub = cmd.partition(" ")[2].partition(" ")
        # Rows name the full command, or a group then its subcommands separated by " / ".
        if f"`{cmd}" not in reference and not re.search(
            rf"`botctl {group} [^`|]*`[^|]*`{re.escape(sub)}\b", reference
        ):
            missing.append(cmd)
    assert missing == [], f"document these in README.md's CLI reference: {missing}"


def test_every_module_is_in_the_architecture_doc():
    from botctl.connectors import registry

    doc = (REPO / "docs" / "architecture.md").read_text()
    # One module per connector: listed in docs/adding-a-connector.md (tests/test_connector_registry_complete.py).
    connector_modules = {c.validate.__module__.rsplit(".", 1)[1] + ".py" for c in registry.all_connectors()}
    missing = []
    for path in sorted((REPO / "src" / "botctl").rglob("*.py")):
        rel = path.relative_to(REPO / "src" / "botctl")
        if rel.name == "__init__.py" or "sandbox" in rel.parts[:-1] or "vendors" in rel.parts:
            continue
        if rel.parts[0] == "connectors" and rel.name in connector_modules:
            continue
        if rel.name not in doc and rel.stem not in doc:
            missing.append(str(rel))
    assert missing == [], f"describe these in docs/architecture.md: {missing}"
