"""Declarative provisioning: a TOML file describes workspaces; `apply` makes the vault match it.

Three phases, so a bad file never changes anything:

1. `load(path)` parses and validates the whole file (schema, names, plans, origins, PEM files,
   knowledge documents, connector settings, environment variables holding the secrets) and returns a
   `Spec`. Every problem is reported as `FILE:LINE: key.path: message`; a literal secret anywhere in
   the file is refused. Nothing touches the vault here.
2. `plan(app, spec, ...)` compares the spec with the vault and returns `Step`s (create / update /
   delete / unchanged per object). Reading only; stored secrets are decrypted in memory to compare
   them with the environment, never shown.
3. `execute(app, steps, ...)` runs the changing steps through the library calls (each audited with
   the App's actor), keeps going when one object fails (a vendor rejecting a key), and appends one
   `provision.applied` summary record when anything changed or failed.

Keys the file leaves out are left as they are (on create: the library defaults). Nothing is
deleted unless `prune` is given: then workspaces, connections and workspace OAuth apps that are not
in the file are removed. Identity keys and knowledge documents missing from the file are kept.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botctl.errors import BotctlError, UsageError
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.app import App
    from botctl.connectors.base import Connector
    from botctl.workspaces import Workspace

EXIT_PARTIAL = 7
ACTIONS = ("create", "update", "delete", "unchanged")
# A key that names a secret; `*_env` (the variable holding it) does not match.
_LITERAL_SECRET = re.compile(r"(?:^|_)(?:api_?key|api_?secret|secret|token|password|passwd|passphrase)$", re.I)
_KID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WS_KEYS = {"plan", "display_name", "origins", "identity", "knowledge", "oauth_apps", "connections"}
_IDENTITY_KEYS = {"issuer", "max_lifetime", "hs256", "public_keys"}
_PUBLIC_KEY_KEYS = {"kid", "alg", "path", "jwks_url"}
_KNOWLEDGE_KEYS = {"paths"}
_OAUTH_APP_KEYS = {"client_id", "client_secret_env", "authorize_url", "token_url", "revoke_url", "device_url",
                   "metadata_url", "redirect_uri", "token_auth", "scopes"}
_CONN_SECRET_KEYS = {"api_key_env": "api_key", "api_secret_env": "api_secret", "access_token_env": "access_token"}

Path_ = tuple[str | int, ...]


class ProvisionError(UsageError):
    """The file is invalid (exit 2); every problem found, each as FILE:LINE: key: message."""

    code = "invalid_provision_file"

    def __init__(self, problems: list[str]) -> None:
        head = problems[0] if len(problems) == 1 else f"{len(problems)} problems in the file:\n  " + "\n  ".join(problems)
        super().__init__(head, hint="Fix the file and apply again; nothing was changed.")
        self.problems = problems


# -- spec --------------------------------------------------------------------------------------------


@dataclass
class KeySpec:
    kid: str
    alg: str
    pem: str | None
    jwks_url: str | None


@dataclass
class AppSpec:
    connector: Connector
    client_id: str
    secret: Secret | None
    settings: dict[str, Any]


@dataclass
class ConnSpec:
    connector: Connector
    config: dict[str, str]
    credential: dict[str, Secret]


@dataclass
class WorkspaceSpec:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)  # only the ones the file gives: plan, display_name, origins
    issuer: str | None = None  # None: not managed; "": no issuer required
    max_lifetime: int | None = None
    hs256: bool = False
    keys: list[KeySpec] = field(default_factory=list)
    knowledge_paths: list[Path] = field(default_factory=list)
    docs: dict[str, str] = field(default_factory=dict)  # document name -> sha256
    oauth_apps: dict[str, AppSpec] = field(default_factory=dict)
    connections: dict[str, ConnSpec] = field(default_factory=dict)


@dataclass
class Spec:
    file: Path
    workspaces: dict[str, WorkspaceSpec]
    global_apps: dict[str, AppSpec]


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + p)
    return out


def _split_key(text: str) -> list[str]:
    return [p.strip().strip("\"'") for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text.strip()) if p.strip()]


def locate(text: str, path: Path_) -> int:
    """The line (1-based) where `path` is set, found by scanning the TOML text (approximate: falls back
    to the closest enclosing table or key)."""
    want = list(path)
    while want and isinstance(want[-1], int) and len(want) > 1 and not _is_table_array(text, want[:-1]):
        want.pop()  # an index into a plain array: the key's line
    target = tuple(want)
    current: tuple = ()
    counts: dict[tuple, int] = {}
    best, best_len = 1, -1
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith(("'", '"')) else raw.strip()
        if not line:
            continue
        m = re.match(r"^(\[\[?)\s*([^\]]+?)\s*\]\]?$", line)
        if m:
            header = tuple(_split_key(m.group(2)))
            if m.group(1) == "[[":
                counts[header] = counts.get(header, 0) + 1
                current = header + (counts[header] - 1,)
            else:
                current = header
            full = current
        elif "=" in line:
            full = current + tuple(_split_key(line.split("=", 1)[0]))
        else:
            continue
        if full == target:
            return n
        if len(full) <= len(target) and target[:len(full)] == full and len(full) > best_len:
            best, best_len = n, len(full)
    return best


def _is_table_array(text: str, path: list) -> bool:
    name = ".".join(str(p) for p in path)
    return bool(re.search(r"^\s*\[\[\s*" + re.escape(name) + r"\s*\]\]", text, re.M))


class _Checker:
    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.text = text
        self.problems: list[str] = []

    def err(self, path: Path_, message: str) -> None:
        self.problems.append(f"{self.file}:{locate(self.text, path)}: {_dotted(path)}: {message}")

    def table(self, value: Any, path: Path_, allowed: set[str] | None) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.err(path, f"must be a table, not {_type(value)}.")
            return None
        if allowed is not None:
            for k in sorted(set(value) - allowed):
                self.err(path + (k,), f"unknown key (allowed here: {', '.join(sorted(allowed))}).")
        return value

    def str_(self, t: dict, key: str, path: Path_, *, required: bool = False) -> str | None:
        if key not in t:
            if required:
                self.err(path + (key,), "is required.")
            return None
        v = t[key]
        if not isinstance(v, str):
            self.err(path + (key,), f"must be a string, not {_type(v)}.")
            return None
        return v

    def str_list(self, t: dict, key: str, path: Path_) -> list[str] | None:
        if key not in t:
            return None
        v = t[key]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.err(path + (key,), "must be a list of strings.")
            return None
        return v

    def env(self, t: dict, key: str, path: Path_) -> Secret | None:
        var = self.str_(t, key, path)
        if var is None:
            return None
        if not _ENV_NAME.fullmatch(var):
            self.err(path + (key,), f"{var!r} is not an environment variable name.")
            return None
        value = os.environ.get(var, "").strip()
        if not value:
            self.err(path + (key,), f"environment variable {var} is empty or not set.")
            return None
        return Secret(value)

    def usage(self, path: Path_, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except BotctlError as exc:
            self.err(path, exc.message.rstrip(".") + "." + (f" {exc.hint}" if exc.hint else ""))
            return None


def _type(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def _literal_secrets(value: Any, path: Path_, out: list[Path_]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and _LITERAL_SECRET.search(k):
                out.append(path + (k,))
            else:
                _literal_secrets(v, path + (k,), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _literal_secrets(v, path + (i,), out)


def parse_duration(value: Any) -> int:
    from botctl.identity import parse_duration as parse

    return parse(value)


def load(file: str | os.PathLike[str], *, secrets_out: str | None = None) -> Spec:
    """Parse and validate the whole file; raise ProvisionError listing every problem."""
    from botctl import connections, identity, knowledge, oauth, oauth_apps, workspaces

    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError([f"{path}: cannot read the file ({exc.__class__.__name__}: {exc})."]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError([f"{path}: not valid TOML: {exc}"]) from None
    base = path.resolve().parent
    c = _Checker(path, text)

    literal: list[Path_] = []
    _literal_secrets(data, (), literal)
    for p in literal:
        c.err(p, f"a literal secret is not allowed in the file; name an environment variable with "
                 f"{p[-1]}_env = \"VAR\" instead.")
    if c.problems:
        raise ProvisionError(c.problems)

    c.table(data, (), {"workspaces", "oauth_apps"})
    spec = Spec(path, {}, {})

    def app_spec(raw: Any, p: Path_, connector_name: str) -> AppSpec | None:
        t = c.table(raw, p, _OAUTH_APP_KEYS)
        if t is None:
            return None
        connector = c.usage(p, lambda: connections.resolve_connector(connector_name))
        if connector is None or c.usage(p, lambda: oauth.vendor(connector.name)) is None:
            return None
        client_id = c.str_(t, "client_id", p, required=True)
        secret = c.env(t, "client_secret_env", p)
        settings = {k: t[k] for k in _OAUTH_APP_KEYS - {"client_id", "client_secret_env"} if k in t}
        for k, v in settings.items():
            if not isinstance(v, str):
                c.err(p + (k,), f"must be a string, not {_type(v)}.")
        if "token_auth" not in settings and "client_secret_env" not in t:
            c.err(p + ("client_secret_env",), "is required (or token_auth = \"none\" for a public client).")
        if client_id is not None and not oauth_apps.CLIENT_ID_RE.match(client_id.strip()):
            c.err(p + ("client_id",), "must be 1-512 printable characters without spaces.")
        if c.problems:
            return None
        clean = c.usage(p, lambda: oauth_apps.validate_settings(connector, settings, has_secret=secret is not None))
        if clean is None or client_id is None:
            return None
        return AppSpec(connector, client_id.strip(), secret, clean)

    raw_global = data.get("oauth_apps", {})
    if c.table(raw_global, ("oauth_apps",), None) is not None:
        for name, raw in raw_global.items():
            a = app_spec(raw, ("oauth_apps", name), name)
            if a is not None:
                spec.global_apps[a.connector.name] = a

    raw_ws = data.get("workspaces", {})
    if c.table(raw_ws, ("workspaces",), None) is None:
        raise ProvisionError(c.problems)
    for name, raw in raw_ws.items():
        p: Path_ = ("workspaces", name)
        t = c.table(raw, p, _WS_KEYS)
        if t is None:
            continue
        c.usage(p, lambda n=name: workspaces.validate_name(n))
        ws = WorkspaceSpec(name)
        spec.workspaces[name] = ws
        plan = c.str_(t, "plan", p)
        if plan is not None and c.usage(p + ("plan",), lambda v=plan: workspaces.validate_plan(v)) is not None:
            ws.fields["plan"] = plan
        if "display_name" in t:
            dn = c.str_(t, "display_name", p)
            if dn is not None:
                ws.fields["display_name"] = dn or None
        origins = c.str_list(t, "origins", p)
        if origins is not None:
            clean_origins = c.usage(p + ("origins",), lambda v=origins: workspaces.normalize_origins(v))
            if clean_origins is not None:
                ws.fields["origins"] = list(clean_origins)

        if "identity" in t:
            ip = p + ("identity",)
            it = c.table(t["identity"], ip, _IDENTITY_KEYS)
            if it is not None:
                if "issuer" in it:
                    ws.issuer = c.str_(it, "issuer", ip)
                if "max_lifetime" in it:
                    life = c.usage(ip + ("max_lifetime",), lambda v=it["max_lifetime"]: parse_duration(v))
                    if life is not None and not 60 <= life <= 24 * 3600:
                        c.err(ip + ("max_lifetime",), "must be between 1m and 24h.")
                    elif life is not None:
                        ws.max_lifetime = life
                if "hs256" in it:
                    if isinstance(it["hs256"], bool):
                        ws.hs256 = it["hs256"]
                    else:
                        c.err(ip + ("hs256",), f"must be true or false, not {_type(it['hs256'])}.")
                pks = it.get("public_keys", [])
                if not isinstance(pks, list):
                    c.err(ip + ("public_keys",), "must be an array of tables ([[...public_keys]]).")
                    pks = []
                seen_kids: set[str] = set()
                for i, rk in enumerate(pks):
                    kp = ip + ("public_keys", i)
                    kt = c.table(rk, kp, _PUBLIC_KEY_KEYS)
                    if kt is None:
                        continue
                    kid = c.str_(kt, "kid", kp, required=True)
                    alg = c.str_(kt, "alg", kp, required=True)
                    key_path = c.str_(kt, "path", kp)
                    jwks_url = c.str_(kt, "jwks_url", kp)
                    if kid is not None and not _KID.fullmatch(kid):
                        c.err(kp + ("kid",), "use 1-128 letters, digits, '.', '_', ':' or '-'.")
                    elif kid in seen_kids:
                        c.err(kp + ("kid",), f"kid {kid!r} is given twice.")
                    if kid:
                        seen_kids.add(kid)
                    if alg is not None and alg not in ("RS256", "ES256", "EdDSA"):
                        c.err(kp + ("alg",), f"unsupported algorithm {alg!r}; use RS256, ES256 or EdDSA.")
                        alg = None
                    if (key_path is None) == (jwks_url is None):
                        c.err(kp, "give exactly one of path (a PEM public key) or jwks_url.")
                        continue
                    pem = None
                    if key_path is not None:
                        try:
                            pem = (base / key_path).read_text(encoding="utf-8")
                        except (OSError, UnicodeDecodeError) as exc:
                            c.err(kp + ("path",), f"cannot read {base / key_path}: {exc.__class__.__name__}.")
                            continue
                        if alg is not None and c.usage(kp + ("path",),
                                                       lambda pem=pem, alg=alg: identity.check_public_key(pem, alg) or True) is None:
                            continue
                    elif jwks_url is not None and not jwks_url.startswith("https://") \
                            and not identity.is_loopback_url(jwks_url):
                        c.err(kp + ("jwks_url",), "must be an https:// URL.")
                        continue
                    if kid and alg:
                        ws.keys.append(KeySpec(kid, alg, pem, jwks_url))

        if "knowledge" in t:
            kp = p + ("knowledge",)
            kt = c.table(t["knowledge"], kp, _KNOWLEDGE_KEYS)
            paths = c.str_list(kt, "paths", kp) if kt is not None else None
            if paths is not None:
                ws.knowledge_paths = [base / x for x in paths]
                collected = c.usage(kp + ("paths",), lambda ps=ws.knowledge_paths: knowledge.collect(ps))
                if collected is not None:
                    for f, doc_name in collected[0]:
                        parsed = c.usage(kp + ("paths",), lambda f=f, n=doc_name: knowledge.parse_document(f, n))
                        if parsed is not None:
                            ws.docs[parsed.name] = parsed.sha256

        if "oauth_apps" in t:
            op = p + ("oauth_apps",)
            ot = c.table(t["oauth_apps"], op, None)
            for cname, raw_app in (ot or {}).items():
                a = app_spec(raw_app, op + (cname,), cname)
                if a is not None:
                    ws.oauth_apps[a.connector.name] = a

        if "connections" in t:
            cp = p + ("connections",)
            ct = c.table(t["connections"], cp, None)
            for cname, raw_conn in (ct or {}).items():
                conn = _conn_spec(c, raw_conn, cp + (cname,), cname)
                if conn is not None:
                    ws.connections[conn.connector.name] = conn

    if secrets_out and any(w.hs256 for w in spec.workspaces.values()):
        problem = _check_secrets_out(Path(secrets_out))
        if problem:
            c.problems.append(f"--secrets-out {secrets_out}: {problem}")
    if c.problems:
        raise ProvisionError(c.problems)
    return spec


def _conn_spec(c: _Checker, raw: Any, p: Path_, name: str) -> ConnSpec | None:
    from botctl import connections

    connector = c.usage(p, lambda: connections.resolve_connector(name))
    if connector is None:
        return None
    allowed = set(_CONN_SECRET_KEYS) | set(connector.config_fields) | {"sandbox"}
    t = c.table(raw, p, allowed)
    if t is None:
        return None
    settings = {k: c.str_(t, k, p) for k in connector.config_fields if k in t}
    sandbox = c.str_(t, "sandbox", p) if "sandbox" in t else (os.environ.get("BOTCTL_SANDBOX") or None)
    if connector.auth == "api_key":
        needed = ["api_key_env"] + (["api_secret_env"] if connector.auth_style == "basic_key_secret" else [])
        if "access_token_env" in t:
            c.err(p + ("access_token_env",), f"{connector.vendor} connects with an API key: use api_key_env.")
        if "api_secret_env" in t and "api_secret_env" not in needed:
            c.err(p + ("api_secret_env",), f"{connector.vendor} takes no API secret.")
    else:
        needed = ["access_token_env"]
        for k in ("api_key_env", "api_secret_env"):
            if k in t:
                c.err(p + (k,), f"{connector.vendor} connects with OAuth: give a vendor-issued token with "
                                "access_token_env (run `botctl connect` for the browser flow).")
    credential: dict[str, Secret] = {}
    for k in needed:
        if k not in t:
            c.err(p + (k,), "is required.")
            continue
        secret = c.env(t, k, p)
        if secret is not None:
            credential[_CONN_SECRET_KEYS[k]] = secret
    config = c.usage(p, lambda: connections.resolve_config(connector, settings, sandbox))
    if config is None or len(credential) != len(needed):
        return None
    return ConnSpec(connector, config, credential)


def _check_secrets_out(path: Path) -> str | None:
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError) as exc:
            return f"exists but is not readable JSON ({exc.__class__.__name__})."
        if not isinstance(existing, dict):
            return "exists but is not a JSON object."
        if not os.access(path, os.W_OK):
            return "is not writable."
    elif not path.parent.is_dir():
        return f"folder {path.parent} does not exist."
    return None


def write_secret(path: Path, workspace: str, entry: dict[str, str]) -> None:
    """Merge one workspace's new secret into the secrets file (JSON object, mode 0600)."""
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text(encoding="utf-8") or "{}")
    existing.setdefault(workspace, {}).update(entry)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(existing, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- plan --------------------------------------------------------------------------------------------


@dataclass
class Step:
    action: str
    kind: str
    name: str
    detail: str = ""
    run: Callable[[], Any] | None = None
    workspace: str | None = None
    creates_workspace: bool = False
    status: str = "pending"  # pending | ok | failed | skipped | unchanged
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"action": self.action, "kind": self.kind, "name": self.name, "detail": self.detail}
        if self.status in ("ok", "failed", "skipped"):
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Result:
    steps: list[Step]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return not self.dry_run and any(s.status == "ok" and s.action != "unchanged" for s in self.steps)

    @property
    def pending(self) -> int:
        return sum(1 for s in self.steps if s.action != "unchanged")

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"changed": self.changed, "plan": [s.as_dict() for s in self.steps]}
        if self.dry_run:
            out["dry_run"] = True
        if self.failed:
            out["failed"] = [f"{s.kind} {s.name}" for s in self.failed]
        if self.secrets:
            out["secrets"] = self.secrets
        return out


def _same_secret(a: Secret | None, b: Secret | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return hmac.compare_digest(a.reveal().encode(), b.reveal().encode())


def _ws_getter(app: App, name: str) -> Callable[[], Workspace]:
    from botctl import workspaces

    return lambda: workspaces.get(app.vault.conn, name)


def plan(app: App | None, spec: Spec, *, prune: bool = False, reconnect: bool = False,
         secrets_out: Path | None = None, result: Result | None = None) -> list[Step]:
    """The steps that make the vault match `spec` (app None: an empty vault, for a dry run on a new home)."""
    from botctl import connections, identity, knowledge, workspaces

    conn = app.vault.conn if app is not None else None
    steps: list[Step] = []
    existing_ws = {w.name: w for w in workspaces.list_all(conn)} if conn is not None else {}

    steps += _plan_apps(app, None, None, spec.global_apps, prune=False)

    for name, ws_spec in spec.workspaces.items():
        cur = existing_ws.get(name)
        get_ws = _ws_getter(app, name) if app is not None else (lambda: None)  # type: ignore[assignment,return-value]
        if cur is None:
            f = dict(ws_spec.fields)
            detail = ", ".join(f"{k} {v!r}" for k, v in f.items() if k != "origins")
            if f.get("origins"):
                detail += (", " if detail else "") + "origins " + " ".join(f["origins"])
            steps.append(Step("create", "workspace", name, detail or "defaults", workspace=name, creates_workspace=True,
                              run=lambda n=name, f=f: workspaces.create(app, n, plan=f.get("plan", "free"),
                                                                        origins=f.get("origins"),
                                                                        display_name=f.get("display_name"))))
        else:
            changes = {k: v for k, v in ws_spec.fields.items()
                       if (list(cur.origins) if k == "origins" else getattr(cur, k)) != v}
            if changes:
                detail = "; ".join(f"{k}: {_show(getattr(cur, k))} -> {_show(v)}" for k, v in changes.items())
                steps.append(Step("update", "workspace", name, detail, workspace=name,
                                  run=lambda n=name, ch=changes: workspaces.update(app, n, **ch)))
            else:
                steps.append(Step("unchanged", "workspace", name, workspace=name))

        # identity settings
        if ws_spec.issuer is not None or ws_spec.max_lifetime is not None:
            cur_iss, cur_life = identity.settings(conn, cur) if cur is not None else (None, None)
            want_iss = ws_spec.issuer if ws_spec.issuer is not None else cur_iss
            kwargs: dict[str, Any] = {}
            parts = []
            if ws_spec.issuer is not None and (ws_spec.issuer or None) != cur_iss:
                kwargs.update({"clear_issuer": True} if not ws_spec.issuer else {"issuer": ws_spec.issuer})
                parts.append(f"issuer {_show(cur_iss)} -> {_show(want_iss or None)}")
            if ws_spec.max_lifetime is not None and ws_spec.max_lifetime != cur_life:
                kwargs["max_lifetime"] = ws_spec.max_lifetime
                parts.append(f"max_lifetime {cur_life if cur_life is not None else 'default'} -> {ws_spec.max_lifetime}s")
            if kwargs:
                steps.append(Step("update" if cur else "create", "identity", name, "; ".join(parts), workspace=name,
                                  run=lambda g=get_ws, kw=kwargs: identity.set_settings(app, g(), **kw)))
            else:
                steps.append(Step("unchanged", "identity", name, workspace=name))

        # identity keys
        keys = {k.kid: k for k in identity.list_keys(conn, cur)} if cur is not None else {}
        for ks in ws_spec.keys:
            have = keys.get(ks.kid)
            kname = f"{name}/{ks.kid}"
            what = f"{ks.alg} " + ("public key" if ks.pem else f"JWKS {ks.jwks_url}")

            def add(g=get_ws, ks=ks):
                return identity.add_public_key(app, g(), alg=ks.alg, pem=ks.pem, jwks_url=ks.jwks_url, kid=ks.kid)

            if have is None:
                steps.append(Step("create", "identity_key", kname, what, workspace=name, run=add))
            elif (have.alg, (have.public_key or "").strip() or None, have.jwks_url) != \
                    (ks.alg, (ks.pem or "").strip() or None, ks.jwks_url):
                if have.kind == "secret":
                    steps.append(Step("update", "identity_key", kname, "kid is an HS256 secret here", workspace=name,
                                      run=_fail(f"kid {ks.kid!r} is an HS256 secret in this workspace; "
                                                "give the public key another kid.")))
                    continue

                def replace(g=get_ws, ks=ks, add=add):
                    identity.remove_key(app, g(), ks.kid)
                    return add()

                steps.append(Step("update", "identity_key", kname, f"replaced by {what}", workspace=name, run=replace))
            else:
                steps.append(Step("unchanged", "identity_key", kname, what, workspace=name))
        if ws_spec.hs256:
            now = identity.iso(time.time())
            live = [k for k in keys.values() if k.kind == "secret" and k.active(now)]
            if live:
                steps.append(Step("unchanged", "identity_key", f"{name}/hs256", f"HS256 secret {live[-1].kid}",
                                  workspace=name))
            else:
                where = f"written to {secrets_out}" if secrets_out else "shown once"

                def rotate(g=get_ws, n=name):
                    key, secret = identity.rotate(app, g())
                    entry = {"kid": key.kid, "alg": "HS256", "hs256_secret": secret.reveal()}
                    written = False
                    if secrets_out is not None:
                        try:
                            write_secret(secrets_out, n, entry)
                            written = True
                        except OSError:  # the secret exists now: show it rather than lose it
                            written = False
                    if not written and result is not None:
                        result.secrets[n] = entry
                    return key

                steps.append(Step("create", "identity_key", f"{name}/hs256", f"new HS256 secret ({where})",
                                  workspace=name, run=rotate))

        # knowledge (one knowledge.add for all of the workspace's changed documents)
        if ws_spec.docs:
            stored = {d.name: d.sha256 for d in knowledge.list_docs(conn, cur)} if cur is not None else {}
            batch: dict[str, Any] = {}

            def add_docs(g=get_ws, paths=ws_spec.knowledge_paths, batch=batch):
                if "report" not in batch:
                    batch["report"] = knowledge.add(app, g(), paths)
                return batch["report"]

            for doc, sha in sorted(ws_spec.docs.items()):
                dname = f"{name}/{doc}"
                if doc not in stored:
                    steps.append(Step("create", "knowledge", dname, f"sha256 {sha[:12]}", workspace=name, run=add_docs))
                elif stored[doc] != sha:
                    steps.append(Step("update", "knowledge", dname, f"sha256 {stored[doc][:12]} -> {sha[:12]}",
                                      workspace=name, run=add_docs))
                else:
                    steps.append(Step("unchanged", "knowledge", dname, f"sha256 {sha[:12]}", workspace=name))

        steps += _plan_apps(app, cur, name, ws_spec.oauth_apps, prune=prune)

        # connections
        existing_conns = {c.connector: c for c in connections.list_all(conn, cur)} if cur is not None else {}
        for cname, cs in ws_spec.connections.items():
            have_c = existing_conns.get(cname)
            label = f"{name}/{cname}"
            shown = {k: v for k, v in cs.config.items() if k != "base_url_resolved"}
            run = _connect_runner(app, get_ws, cs)
            if have_c is None:
                steps.append(Step("create", "connection", label, _kv(shown) or cs.connector.auth, workspace=name, run=run))
                continue
            have_cfg = {k: v for k, v in have_c.config.items() if not k.startswith(connections.OAUTH_PREFIX)}
            reasons = []
            if have_cfg != cs.config:
                reasons.append("config " + _kv({k: v for k, v in have_c.public_config().items()}) + " -> " + _kv(shown))
            if have_c.status != "active":
                reasons.append(f"status {have_c.status}")
            if not reasons:
                stored_cred = connections.credential(app, cur, have_c)  # type: ignore[arg-type,union-attr]
                if set(stored_cred) - {"refresh_token"} != set(cs.credential) or not all(
                        _same_secret(stored_cred.get(k), v) for k, v in cs.credential.items()):
                    reasons.append("credential changed in the environment")
            if reconnect and not reasons:
                reasons.append("--reconnect")
            if reasons:
                steps.append(Step("update", "connection", label, "; ".join(reasons), workspace=name, run=run))
            else:
                steps.append(Step("unchanged", "connection", label, have_c.account_label or "", workspace=name))
        if prune and cur is not None:
            for cname, have_c in existing_conns.items():
                if cname not in ws_spec.connections:
                    steps.append(Step("delete", "connection", f"{name}/{cname}", "not in the file (--prune)",
                                      workspace=name, run=_disconnect_runner(app, get_ws, have_c)))

    if prune:
        for name in existing_ws:
            if name not in spec.workspaces:
                steps.append(Step("delete", "workspace", name, "not in the file (--prune); its key is destroyed",
                                  run=lambda n=name: workspaces.delete(app, n)))
    return steps


def _plan_apps(app: App | None, cur: Workspace | None, ws_name: str | None, apps: dict[str, AppSpec], *,
               prune: bool) -> list[Step]:
    from botctl import oauth_apps, workspaces

    steps: list[Step] = []
    conn = app.vault.conn if app is not None else None
    scope = ws_name or "global"
    for cname, a in apps.items():
        have = oauth_apps.find(conn, cname, cur) if conn is not None and (cur is not None or ws_name is None) else None
        label = f"{scope}/{cname}"

        def run(a=a):
            ws = workspaces.get(app.vault.conn, ws_name) if ws_name else None  # type: ignore[union-attr]
            return oauth_apps.set_app(app, a.connector, ws=ws, client_id=a.client_id, client_secret=a.secret,  # type: ignore[arg-type]
                                      settings=a.settings)

        if have is None:
            steps.append(Step("create", "oauth_app", label, f"client_id {a.client_id}", workspace=ws_name, run=run))
            continue
        reasons = []
        if have.client_id != a.client_id:
            reasons.append(f"client_id {have.client_id} -> {a.client_id}")
        if have.settings != a.settings:
            reasons.append("settings " + _kv(have.settings) + " -> " + _kv(a.settings))
        if not reasons and not _same_secret(oauth_apps.client_secret(app, have, cur), a.secret):  # type: ignore[arg-type]
            reasons.append("client secret changed in the environment")
        if reasons:
            steps.append(Step("update", "oauth_app", label, "; ".join(reasons), workspace=ws_name, run=run))
        else:
            steps.append(Step("unchanged", "oauth_app", label, f"client_id {a.client_id}", workspace=ws_name))
    if prune and cur is not None and conn is not None:
        for have in oauth_apps.list_all(conn):
            if have.workspace_id == cur.id and have.connector not in apps:
                steps.append(Step("delete", "oauth_app", f"{scope}/{have.connector}", "not in the file (--prune)",
                                  workspace=ws_name,
                                  run=lambda c=have.connector: oauth_apps.remove(
                                      app, c, workspaces.get(app.vault.conn, ws_name))))  # type: ignore[union-attr,arg-type]
    return steps


def _show(v: Any) -> str:
    if v is None:
        return "(none)"
    if isinstance(v, list | tuple):
        return "[" + " ".join(str(x) for x in v) + "]"
    return str(v)


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()))


def _fail(message: str) -> Callable[[], Any]:
    def run() -> Any:
        raise UsageError(message)
    return run


def _connect_runner(app: App | None, get_ws: Callable[[], Workspace], cs: ConnSpec) -> Callable[[], Any]:
    """Validate with the vendor and save, exactly as `botctl connect` does with an API key or token."""

    def run() -> Any:
        from botctl import connections
        from botctl.connectors.base import ActionError

        assert app is not None
        ws = get_ws()
        try:
            label = asyncio.run(connections.validate(cs.connector, cs.config, cs.credential))
        except ActionError as exc:
            err = connections.error_for(exc, cs.connector.vendor)
            app.audit("connection.failed", workspace=ws.name, connector=cs.connector.name,
                      outcome="denied" if err.exit_code != 22 else "error", reason=err.code,
                      detail={"upstream_status": exc.upstream_status, "message": exc.message})
            raise err from None
        return connections.save(app, ws, cs.connector, auth=cs.connector.auth, config=cs.config,
                                credential=cs.credential, account_label=label)[0]

    return run


def _disconnect_runner(app: App | None, get_ws: Callable[[], Workspace], have: Any) -> Callable[[], Any]:
    """Revoke where the vendor can, then delete (even if revocation failed), as `botctl disconnect` does."""

    def run() -> Any:
        from botctl import connections, oauth

        assert app is not None
        ws = get_ws()
        connector = connections.resolve_connector(have.connector)
        try:
            revoked = asyncio.run(oauth.revoke(app, ws, have, connector))["revoked"]
        except BotctlError as exc:
            revoked = f"failed: {exc.code}"
        connections.delete(app, ws, have, detail={"revoked": revoked, "via": "apply --prune"})

    return run


# -- execute -----------------------------------------------------------------------------------------


def execute(app: App, steps: list[Step], *, file: Path, result: Result) -> Result:
    """Run the changing steps in order; a failure is recorded and the rest go on (except the children
    of a workspace that could not be created). One `provision.applied` record when anything happened."""
    broken: set[str] = set()
    for s in steps:
        if s.action == "unchanged" or s.run is None:
            s.status = "unchanged"
            continue
        if s.workspace is not None and s.workspace in broken:
            s.status, s.error = "skipped", f"workspace {s.workspace} could not be created"
            continue
        try:
            s.run()
            s.status = "ok"
        except BotctlError as exc:
            s.status, s.error = "failed", exc.message
            if s.creates_workspace:
                broken.add(s.name)
    acted = [s for s in steps if s.status in ("ok", "failed")]
    if acted:
        counts: dict[str, int] = {}
        for s in acted:
            if s.status == "ok":
                counts[s.action] = counts.get(s.action, 0) + 1
        app.audit("provision.applied", outcome="error" if result.failed else "ok",
                  detail={"file": file.name, "applied": counts,
                          "failed": [f"{s.kind} {s.name}" for s in result.failed],
                          "workspaces": sorted({s.workspace for s in acted if s.workspace})})
    return result


def apply(app_factory: Callable[[bool], App | None], file: str | os.PathLike[str], *, dry_run: bool = False,
          prune: bool = False, reconnect: bool = False, secrets_out: str | None = None) -> Result:
    """Load, plan and (unless dry_run) execute. `app_factory(create)` opens the App; with
    `create=False` it may return None when there is no vault yet (a dry run on a new home)."""
    spec = load(file, secrets_out=secrets_out)
    app = app_factory(not dry_run)
    result = Result([], dry_run=dry_run)
    result.steps = plan(app, spec, prune=prune, reconnect=reconnect,
                        secrets_out=Path(secrets_out) if secrets_out else None, result=result)
    if dry_run or app is None:
        return result
    return execute(app, result.steps, file=spec.file, result=result)
