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
in the file are removed, and only with `yes` (or a `confirm_destroy` that says yes). Identity keys and
knowledge documents missing from the file are kept.

The file is not trusted (CI applies what a pull request wrote), so `load` also refuses:

* a `*_env` that is not an upper-case variable name (a pasted secret; never echoed), or that names
  one of botctl's own variables (`reserved_env`: the master key, the home, the systemd credentials...);
* a credential bound for a host the connector does not fix (a self-hosted `site` / `base_url`, an
  OAuth endpoint override off the vendor's hosts, a `sandbox` URL in the file, a non-loopback
  BOTCTL_SANDBOX) unless the caller allows that host (`allow_hosts`, or `confirm_hosts` says yes).
  This is decided before any secret is read from the environment, so nothing is read or sent;
* a path (knowledge, public key) outside the file's folder or through a symbolic link.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# Environment variables botctl itself reads (README "Configuration", the systemd credential folder, the
# CI switch, test hooks) or that hold a local database password: a file may never route one of them to
# a vendor. Every BOTCTL_* name is reserved too, including ones added later.
RESERVED_ENV = frozenset({
    "BOTCTL_HOME", "BOTCTL_MASTER_KEY", "BOTCTL_NO_KEYRING", "BOTCTL_WORKSPACE", "BOTCTL_SANDBOX",
    "BOTCTL_LLM_URL", "BOTCTL_LLM_MODEL", "BOTCTL_LLM_API_KEY", "BOTCTL_LLM_TIMEOUT", "BOTCTL_DEBUG",
    "BOTCTL_QUIET", "BOTCTL_FAILPOINTS", "BOTCTL_HOST", "BOTCTL_PORT", "_BOTCTL_COMPLETE",
    "CREDENTIALS_DIRECTORY", "CI", "PGPASSWORD", "PGPASSFILE",
})
_RESERVED_PREFIXES = ("BOTCTL_", "_BOTCTL_")
_URL_CONFIG = ("site", "base_url")  # connector settings that choose the host the credential goes to
_ENDPOINTS = ("authorize_url", "token_url", "revoke_url", "device_url", "metadata_url")
MAX_PEM_BYTES = 64 * 1024
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

    def __init__(self, problems: list[str], *, hint: str = "Fix the file and apply again; nothing was changed.",
                 code: str | None = None) -> None:
        head = problems[0] if len(problems) == 1 else f"{len(problems)} problems in the file:\n  " + "\n  ".join(problems)
        super().__init__(head, hint=hint, code=code)
        self.problems = problems


class HostNotAllowed(ProvisionError):
    """The file would send a credential to a host the connector does not fix, and nobody allowed it (exit 2)."""

    code = "host_not_allowed"


class ConfirmationRequired(UsageError):
    """--prune would destroy something and neither --yes nor a terminal confirmed it (exit 2)."""

    code = "confirmation_required"


def reserved_env(name: str) -> bool:
    """True for a variable botctl reads itself (or a local database password): never a connection's secret."""
    return name in RESERVED_ENV or name.startswith(_RESERVED_PREFIXES)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostUse:
    """A host the file sends a credential to that no connector fixes, and where the file says so."""

    host: str
    port: int | None
    explicit_port: bool
    where: str  # "FILE:LINE: key.path", or "BOTCTL_SANDBOX"
    allowed: bool = False

    @property
    def flag_value(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}" if self.explicit_port and self.port is not None else h

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "where": self.where, "allowed": self.allowed}


def parse_allow_host(value: str) -> tuple[str, int | None]:
    """`--allow-host` value: HOST, HOST:PORT, [V6]:PORT or a URL (its host and port). UsageError otherwise."""
    v = value.strip()
    try:
        parts = urlsplit(v if "://" in v else "//" + v)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or parts.path or parts.query or parts.fragment or parts.username or " " in v:
        raise UsageError(f"--allow-host {value!r} is not a host name.",
                         hint="Give HOST or HOST:PORT, e.g. --allow-host shop.example.com.", code="invalid_allow_host")
    return host.lower(), port


def _host_use(url: str, where: str) -> HostUse | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return HostUse(parts.hostname.lower(), port or default, port is not None, where)


def _allowed(use: HostUse, allow: Sequence[tuple[str, int | None]]) -> bool:
    return any(h == use.host and (p is None or p == use.port) for h, p in allow)


# -- spec --------------------------------------------------------------------------------------------


@dataclass
class _EnvRef:
    """A `*_env` whose name passed the checks; its value is read only once the whole file is accepted."""

    var: str
    path: Path_
    secret: Secret | None = None


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
    secret_ref: _EnvRef | None = None  # read into `secret` once the whole file is accepted


@dataclass
class ConnSpec:
    connector: Connector
    config: dict[str, str]
    credential: dict[str, Secret]
    refs: dict[str, _EnvRef] = field(default_factory=dict)  # read into `credential` likewise


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
    base: Path = Path(".")  # the file's folder (resolved): every path in the file stays inside it
    hosts: list[HostUse] = field(default_factory=list)


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
        self.refs: list[_EnvRef] = []
        self.hosts: list[HostUse] = []

    def where(self, path: Path_) -> str:
        return f"{self.file}:{locate(self.text, path)}: {_dotted(path)}"

    def err(self, path: Path_, message: str) -> None:
        self.problems.append(f"{self.where(path)}: {message}")

    def host(self, url: str, path: Path_ | None, *, where: str | None = None) -> None:
        use = _host_use(url, where or self.where(path or ()))
        if use is not None and use not in self.hosts:
            self.hosts.append(use)

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

    def env(self, t: dict, key: str, path: Path_) -> _EnvRef | None:
        var = self.str_(t, key, path)
        if var is None:
            return None
        if not _ENV_NAME.fullmatch(var):  # refused earlier by _literal_secrets; never echoed
            self.err(path + (key,), _NOT_A_NAME)
            return None
        if reserved_env(var):
            self.err(path + (key,), f"{var} is botctl's own variable (or a local password), never a connection's "
                                    "secret; name the variable that holds the vendor's secret.")
            return None
        ref = _EnvRef(var, path + (key,))
        self.refs.append(ref)
        return ref

    def read_env(self) -> None:
        """Read every accepted `*_env` (only after the file, its hosts and paths were accepted)."""
        for ref in self.refs:
            value = os.environ.get(ref.var, "").strip()
            if value:
                ref.secret = Secret(value)
            else:
                self.err(ref.path, f"environment variable {ref.var} is empty or not set.")

    def usage(self, path: Path_, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except BotctlError as exc:
            self.err(path, exc.message.rstrip(".") + "." + (f" {exc.hint}" if exc.hint else ""))
            return None


def _type(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


_NOT_A_NAME = ("is not an environment variable name (A-Z, 0-9, _): it looks like a literal secret, which is not "
               "allowed in the file (the value is not shown); put it in an environment variable and name that here.")


def _literal_secrets(value: Any, path: Path_, out: list[Path_], names: list[Path_]) -> None:
    """Keys that hold a secret itself (`out`), and `*_env` keys whose value is not a variable name (`names`:
    most likely the secret pasted in place of the name)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and _LITERAL_SECRET.search(k):
                out.append(path + (k,))
            elif k.endswith("_env") and isinstance(v, str) and not _ENV_NAME.fullmatch(v):
                names.append(path + (k,))
            else:
                _literal_secrets(v, path + (k,), out, names)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _literal_secrets(v, path + (i,), out, names)


def parse_duration(value: Any) -> int:
    from botctl.identity import parse_duration as parse

    return parse(value)


def load(file: str | os.PathLike[str], *, secrets_out: str | None = None,
         allow_hosts: Sequence[tuple[str, int | None]] = (), check_hosts: bool = True,
         confirm_hosts: Callable[[list[HostUse]], bool] | None = None) -> Spec:
    """Parse and validate the whole file; raise ProvisionError listing every problem.

    Hosts (see the module's doc): each use is marked allowed when `allow_hosts` ((host, port or None)
    pairs) covers it. With `check_hosts`, uses left over are offered to `confirm_hosts` (a terminal's
    yes/no) and, refused, raise HostNotAllowed before any environment variable is read; without it (a
    dry run) they are only reported in `Spec.hosts`."""
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
    base = path.absolute().parent.resolve()
    inside = f"the file's folder ({base})"
    c = _Checker(path, text)

    literal: list[Path_] = []
    pasted: list[Path_] = []
    _literal_secrets(data, (), literal, pasted)
    for p in literal:
        c.err(p, f"a literal secret is not allowed in the file; name an environment variable with "
                 f"{p[-1]}_env = \"VAR\" instead.")
    for p in pasted:
        c.err(p, _NOT_A_NAME)
    if c.problems:
        raise ProvisionError(c.problems)

    c.table(data, (), {"workspaces", "oauth_apps"})
    spec = Spec(path, {}, {}, base)

    def app_spec(raw: Any, p: Path_, connector_name: str) -> AppSpec | None:
        t = c.table(raw, p, _OAUTH_APP_KEYS)
        if t is None:
            return None
        connector = c.usage(p, lambda: connections.resolve_connector(connector_name))
        if connector is None or c.usage(p, lambda: oauth.vendor(connector.name)) is None:
            return None
        client_id = c.str_(t, "client_id", p, required=True)
        ref = c.env(t, "client_secret_env", p)
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
        clean = c.usage(p, lambda: oauth_apps.validate_settings(connector, settings, has_secret=ref is not None))
        if clean is None or client_id is None:
            return None
        own = _vendor_hosts(connector)
        for k in _ENDPOINTS:
            if k in clean and (urlsplit(clean[k]).hostname or "").lower() not in own:
                c.host(clean[k], p + (k,))
        return AppSpec(connector, client_id.strip(), None, clean, secret_ref=ref)

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
                        pem = c.usage(kp + ("path",), lambda kp_=key_path: _read_pem(base / kp_, base, inside))
                        if pem is None:
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
                collected = c.usage(kp + ("paths",), lambda ps=ws.knowledge_paths: knowledge.collect(
                    ps, within=base, label=inside))
                if collected is not None:
                    for f, doc_name, root in collected[0]:
                        parsed = c.usage(kp + ("paths",), lambda f=f, n=doc_name, r=root: knowledge.parse_document(
                            f, n, within=r, label=inside))
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

    # Hosts the connectors do not fix: allowed by the caller, or confirmed, or refused -- all before a
    # single environment variable is read.
    spec.hosts = [HostUse(u.host, u.port, u.explicit_port, u.where, _allowed(u, allow_hosts)) for u in c.hosts]
    blocked = [u for u in spec.hosts if not u.allowed]
    host_problems = [f"{u.where}: would send a credential to {u.flag_value}, a host the connector does not fix; "
                     f"pass --allow-host {u.flag_value} if it is yours." for u in blocked] if check_hosts else []
    if c.problems:
        raise ProvisionError(c.problems + host_problems)
    if host_problems:
        if confirm_hosts is not None and confirm_hosts(blocked):
            spec.hosts = [HostUse(u.host, u.port, u.explicit_port, u.where, True) for u in spec.hosts]
        else:
            raise HostNotAllowed(host_problems, hint="Nothing was read or sent. `botctl apply --dry-run` lists "
                                                     "every such host; allow yours with --allow-host HOST.")

    c.read_env()
    if c.problems:
        raise ProvisionError(c.problems)
    for a in list(spec.global_apps.values()) + [a for w in spec.workspaces.values() for a in w.oauth_apps.values()]:
        a.secret = a.secret_ref.secret if a.secret_ref is not None else None
    for w in spec.workspaces.values():
        for cs in w.connections.values():
            cs.credential = {k: r.secret for k, r in cs.refs.items() if r.secret is not None}
    return spec


def _vendor_hosts(connector: Connector) -> set[str]:
    """The hosts a connector's OAuth defaults and API live on (placeholders kept, e.g. {subdomain}.zendesk.com)."""
    from botctl import oauth

    v = oauth.vendor(connector.name)
    urls_ = [getattr(v, k, None) for k in _ENDPOINTS] + [connector.base_url]
    return {(urlsplit(u).hostname or "").lower() for u in urls_ if u and u.startswith("https://")}


def _read_pem(p: Path, base: Path, inside: str) -> str:
    from botctl import knowledge

    knowledge.check_path(p, within=base, label=inside)
    data = knowledge.read_file(p, limit=MAX_PEM_BYTES, within=base, label=inside)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not a PEM file (not UTF-8 text).") from None


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
    credential: dict[str, _EnvRef] = {}
    for k in needed:
        if k not in t:
            c.err(p + (k,), "is required.")
            continue
        ref = c.env(t, k, p)
        if ref is not None:
            credential[_CONN_SECRET_KEYS[k]] = ref
    config = c.usage(p, lambda: connections.resolve_config(connector, settings, sandbox))
    if config is None:
        return None
    # Where the credential will go, when the connector does not fix it.
    if config.get("sandbox"):
        if "sandbox" in t:
            c.host(config["sandbox"], p + ("sandbox",))
        elif not _is_loopback(urlsplit(config["sandbox"]).hostname):
            c.host(config["sandbox"], None, where="BOTCTL_SANDBOX")
    else:
        from botctl.connectors import urls

        for f in _URL_CONFIG:
            if f in connector.config_fields:
                default = urls.DEFAULTS.get(connector.name, {}).get(f)
                if default is None or _host_use(config[f], "") != _host_use(default, ""):
                    c.host(config[f], p + (f,))
    if len(credential) != len(needed):
        return None
    return ConnSpec(connector, config, {}, refs=credential)


def _read_secrets_file(path: Path) -> str:
    """An existing secrets file's text, never through a symbolic link (one planted in a checkout could
    point at another file, whose content would be merged into the output)."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        return f.read()


def _check_secrets_out(path: Path) -> str | None:
    if path.is_symlink():
        return "is a symbolic link; give the path of a regular file (or of one to create)."
    if path.exists():
        if not path.is_file():
            return "exists but is not a regular file."
        try:
            existing = json.loads(_read_secrets_file(path) or "{}")
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
    if path.exists() or path.is_symlink():
        existing = json.loads(_read_secrets_file(path) or "{}")
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

    @property
    def destructive(self) -> bool:
        """Deletes something (a workspace and its key, a connection, an OAuth app): needs confirmation."""
        return self.action == "delete"

    def as_dict(self) -> dict[str, Any]:
        out = {"action": self.action, "kind": self.kind, "name": self.name, "detail": self.detail,
               "destructive": self.destructive}
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
    hosts: list[HostUse] = field(default_factory=list)

    @property
    def destructive(self) -> list[Step]:
        return [s for s in self.steps if s.destructive]

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
        out: dict[str, Any] = {"changed": self.changed, "plan": [s.as_dict() for s in self.steps],
                               "hosts": [h.as_dict() for h in self.hosts]}
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
                        except (OSError, ValueError):  # the secret exists now: show it rather than lose it
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
                if "report" not in batch:  # read again, under the same rules as when the file was checked
                    batch["report"] = knowledge.add(app, g(), paths, within=spec.base,
                                                    label=f"the file's folder ({spec.base})")
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


def destroy_summary(steps: Sequence[Step]) -> str:
    """'workspace globex (its key is destroyed), connection acme/zendesk' for the confirmation."""
    return ", ".join(f"{s.kind.replace('_', ' ')} {s.name}" + (" (its key is destroyed)" if s.kind == "workspace" else "")
                     for s in steps)


def apply(app_factory: Callable[[bool], App | None], file: str | os.PathLike[str], *, dry_run: bool = False,
          prune: bool = False, reconnect: bool = False, secrets_out: str | None = None,
          allow_hosts: Sequence[str] = (), confirm_hosts: Callable[[list[HostUse]], bool] | None = None,
          yes: bool = False, confirm_destroy: Callable[[list[Step]], bool] | None = None) -> Result:
    """Load, plan and (unless dry_run) execute. `app_factory(create)` opens the App; with
    `create=False` it may return None when there is no vault yet (a dry run on a new home).

    `allow_hosts` (--allow-host values) and `confirm_hosts` decide the hosts the connectors do not fix
    (a dry run only reports them). Deleting anything (--prune) needs `yes` or `confirm_destroy` to say
    yes; otherwise ConfirmationRequired is raised before any step runs."""
    allow = [parse_allow_host(h) for h in allow_hosts]
    spec = load(file, secrets_out=secrets_out, allow_hosts=allow, check_hosts=not dry_run,
                confirm_hosts=confirm_hosts)
    app = app_factory(not dry_run)
    result = Result([], dry_run=dry_run, hosts=spec.hosts)
    result.steps = plan(app, spec, prune=prune, reconnect=reconnect,
                        secrets_out=Path(secrets_out) if secrets_out else None, result=result)
    if dry_run or app is None:
        return result
    doomed = result.destructive
    if doomed and not yes and not (confirm_destroy is not None and confirm_destroy(doomed)):
        raise ConfirmationRequired(f"--prune would delete {destroy_summary(doomed)}; nothing was changed.",
                                   hint="Re-run with --yes to confirm (`--dry-run` shows the plan first).")
    return execute(app, result.steps, file=spec.file, result=result)
