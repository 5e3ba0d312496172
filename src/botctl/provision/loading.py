"""`load`: parse the file, check every section, decide the hosts, and only then read the secrets'
environment variables. Any problem raises ProvisionError listing all of them; nothing touches the vault."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botctl.provision import sections
from botctl.provision.envvars import NOT_A_NAME, Path_, literal_secrets
from botctl.provision.errors import ProvisionError
from botctl.provision.hosts import Allow, HostUse, confirm_or_refuse, mark_allowed, refusals
from botctl.provision.secrets_out import check_secrets_out
from botctl.provision.spec import Spec, WorkspaceSpec
from botctl.provision.tomlfile import Checker


def load(
    file: str | os.PathLike[str],
    *,
    secrets_out: str | None = None,
    allow_hosts: Allow = (),
    check_hosts: bool = True,
    confirm_hosts: Callable[[list[HostUse]], bool] | None = None,
) -> Spec:
    """Parse and validate the whole file; raise ProvisionError listing every problem.

    Hosts (see the package's doc): each use is marked allowed when `allow_hosts` ((host, port or None)
    pairs) covers it. With `check_hosts`, uses left over are offered to `confirm_hosts` (a terminal's
    yes/no) and, refused, raise HostNotAllowed before any environment variable is read; without it (a
    dry run) they are only reported in `Spec.hosts`."""
    path = Path(file)
    text, data = _parse(path)
    c = Checker(path, text)
    _refuse_literal_secrets(c, data)
    c.table(data, (), {"workspaces", "oauth_apps"})
    spec = Spec(path, {}, {}, path.absolute().parent.resolve())
    _global_apps(c, data, spec)
    _workspaces(c, data, spec)
    if secrets_out and any(w.hs256 for w in spec.workspaces.values()):
        problem = check_secrets_out(Path(secrets_out))
        if problem:
            c.problems.append(f"--secrets-out {secrets_out}: {problem}")
    _decide_hosts(c, spec, allow_hosts, check_hosts, confirm_hosts)
    c.read_env()
    if c.problems:
        raise ProvisionError(c.problems)
    spec.resolve_secrets()
    return spec


def _parse(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProvisionError(
            [f"{path}: no such file."], hint="Give the path of your botctl.toml: botctl apply -f FILE"
        ) from None
    except IsADirectoryError:
        raise ProvisionError(
            [f"{path}: is a folder, not a TOML file."],
            hint="Give the path of your botctl.toml: botctl apply -f FILE",
        ) from None
    except UnicodeDecodeError:
        raise ProvisionError([f"{path}: is not UTF-8 text."]) from None
    except OSError as exc:
        raise ProvisionError([f"{path}: cannot read the file ({exc.strerror or 'unreadable'})."]) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError([f"{path}: not valid TOML: {exc}"]) from None


def _refuse_literal_secrets(c: Checker, data: dict[str, Any]) -> None:
    """A secret written into the file (or pasted where a variable name belongs) stops everything first."""
    literal, pasted = literal_secrets(data)
    for p in literal:
        c.err(
            p,
            f"a literal secret is not allowed in the file; name an environment variable with "
            f'{p[-1]}_env = "VAR" instead.',
        )
    for p in pasted:
        c.err(p, NOT_A_NAME)
    if c.problems:
        raise ProvisionError(c.problems)


def _global_apps(c: Checker, data: dict[str, Any], spec: Spec) -> None:
    raw = data.get("oauth_apps", {})
    if c.table(raw, ("oauth_apps",), None) is None:
        return
    for name, raw_app in raw.items():
        a = sections.oauth_app(c, raw_app, ("oauth_apps", name), name)
        if a is not None:
            spec.global_apps[a.connector.name] = a


def _workspaces(c: Checker, data: dict[str, Any], spec: Spec) -> None:
    raw = data.get("workspaces", {})
    if c.table(raw, ("workspaces",), None) is None:
        raise ProvisionError(c.problems)
    for name, raw_ws in raw.items():
        ws = _workspace(c, raw_ws, ("workspaces", name), name, spec.base)
        if ws is not None:
            spec.workspaces[name] = ws


def _workspace(c: Checker, raw: Any, p: Path_, name: str, base: Path) -> WorkspaceSpec | None:
    """One [workspaces.X] table and every section under it."""
    from botctl import workspaces

    t = c.table(raw, p, sections.WS_KEYS)
    if t is None:
        return None
    c.usage(p, lambda: workspaces.validate_name(name))
    ws = WorkspaceSpec(name)
    sections.workspace_fields(c, t, p, ws)
    if "identity" in t:
        sections.identity(c, t["identity"], p + ("identity",), ws, base)
    if "knowledge" in t:
        sections.knowledge_docs(c, t["knowledge"], p + ("knowledge",), ws, base)
    if "oauth_apps" in t:
        for cname, raw_app in (c.table(t["oauth_apps"], p + ("oauth_apps",), None) or {}).items():
            a = sections.oauth_app(c, raw_app, p + ("oauth_apps", cname), cname)
            if a is not None:
                ws.oauth_apps[a.connector.name] = a
    if "connections" in t:
        for cname, raw_conn in (c.table(t["connections"], p + ("connections",), None) or {}).items():
            cs = sections.connection(c, raw_conn, p + ("connections", cname), cname)
            if cs is not None:
                ws.connections[cs.connector.name] = cs
    return ws


def _decide_hosts(
    c: Checker, spec: Spec, allow: Allow, check: bool, confirm: Callable[[list[HostUse]], bool] | None
) -> None:
    """Hosts the connectors do not fix: allowed by the caller, or confirmed, or refused -- all before a
    single environment variable is read. A dry run (`check` false) only reports them."""
    spec.hosts = mark_allowed(c.hosts, allow)
    host_problems = refusals(spec.hosts) if check else []
    if c.problems:
        raise ProvisionError(c.problems + host_problems)
    if host_problems:
        spec.hosts = confirm_or_refuse(spec.hosts, confirm)
