"""One checker per section of the file: a workspace's own fields, its identity (settings and public
keys), knowledge, OAuth apps and connections. Each records its problems on the `Checker` and returns
what it accepted; nothing here reads a secret or touches the vault."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botctl.durations import parse_duration
from botctl.errors import UsageError
from botctl.provision.envvars import EnvRef, Path_
from botctl.provision.hosts import ENDPOINTS, host_use, is_loopback, url_settings, vendor_hosts
from botctl.provision.spec import AppSpec, ConnSpec, KeySpec, WorkspaceSpec
from botctl.provision.tomlfile import Checker, type_name

MAX_PEM_BYTES = 64 * 1024
WS_KEYS = {"plan", "display_name", "origins", "identity", "knowledge", "oauth_apps", "connections"}
_IDENTITY_KEYS = {"issuer", "max_lifetime", "hs256", "public_keys"}
_PUBLIC_KEY_KEYS = {"kid", "alg", "path", "jwks_url"}
_KNOWLEDGE_KEYS = {"paths"}
_OAUTH_APP_KEYS = {
    "client_id",
    "client_secret_env",
    "authorize_url",
    "token_url",
    "revoke_url",
    "device_url",
    "metadata_url",
    "redirect_uri",
    "token_auth",
    "scopes",
}
_CONN_SECRET_KEYS = {
    "api_key_env": "api_key",
    "api_secret_env": "api_secret",
    "access_token_env": "access_token",
}
_KID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _inside(base: Path) -> str:
    return f"the file's folder ({base})"


def _same(keys: set[str] | tuple[str, ...]) -> dict[str, str]:
    """Each key is its own word: `--token-auth` in a library error reads `token_auth` here."""
    return {k: k for k in keys}


# -- a workspace's own fields ---------------------------------------------------------------------------


def workspace_fields(c: Checker, t: dict, p: Path_, ws: WorkspaceSpec) -> None:
    """plan, display_name, origins: only the ones the file gives end up in `ws.fields`."""
    from botctl import workspaces

    plan = c.str_(t, "plan", p)
    if plan is not None and c.usage(p + ("plan",), lambda: workspaces.validate_plan(plan)) is not None:
        ws.fields["plan"] = plan
    if "display_name" in t:
        dn = c.str_(t, "display_name", p)
        if dn is not None:
            ws.fields["display_name"] = dn or None
    origins = c.str_list(t, "origins", p)
    if origins is not None:
        clean = c.usage(p + ("origins",), lambda: workspaces.normalize_origins(origins))
        if clean is not None:
            ws.fields["origins"] = list(clean)


# -- identity ---------------------------------------------------------------------------------------------


def identity(c: Checker, raw: Any, p: Path_, ws: WorkspaceSpec, base: Path) -> None:
    """[workspaces.X.identity]: issuer, max_lifetime, hs256 and the public keys."""
    it = c.table(raw, p, _IDENTITY_KEYS)
    if it is None:
        return
    _identity_settings(c, it, p, ws)
    pks = it.get("public_keys", [])
    if not isinstance(pks, list):
        c.err(p + ("public_keys",), "must be an array of tables ([[...public_keys]]).")
        pks = []
    seen: set[str] = set()
    for i, rk in enumerate(pks):
        key = _public_key(c, rk, p + ("public_keys", i), seen, base)
        if key is not None:
            ws.keys.append(key)


def _identity_settings(c: Checker, it: dict, p: Path_, ws: WorkspaceSpec) -> None:
    from botctl import identity

    if "issuer" in it:
        ws.issuer = c.str_(it, "issuer", p)
        if ws.issuer:  # "" means: no issuer required
            issuer = ws.issuer
            c.usage(
                p + ("issuer",),
                lambda: identity.check_issuer(issuer),
                keys={"issuer": "issuer", "no_issuer": 'issuer = ""'},
            )
    if "max_lifetime" in it:
        life = c.usage(p + ("max_lifetime",), lambda: parse_duration(it["max_lifetime"]))
        if life is not None and not 60 <= life <= 24 * 3600:
            c.err(p + ("max_lifetime",), "must be between 1m and 24h.")
        elif life is not None:
            ws.max_lifetime = life
    if "hs256" in it:
        if isinstance(it["hs256"], bool):
            ws.hs256 = it["hs256"]
        else:
            c.err(p + ("hs256",), f"must be true or false, not {type_name(it['hs256'])}.")


def _public_key(c: Checker, raw: Any, p: Path_, seen: set[str], base: Path) -> KeySpec | None:
    """One [[...public_keys]] entry: kid, alg and exactly one of a PEM file (read now) or a JWKS URL."""
    kt = c.table(raw, p, _PUBLIC_KEY_KEYS)
    if kt is None:
        return None
    kid = c.str_(kt, "kid", p, required=True)
    alg = c.str_(kt, "alg", p, required=True)
    key_path = c.str_(kt, "path", p)
    jwks_url = c.str_(kt, "jwks_url", p)
    if kid is not None and not _KID.fullmatch(kid):
        c.err(p + ("kid",), "use 1-128 letters, digits, '.', '_', ':' or '-'.")
    elif kid in seen:
        c.err(p + ("kid",), f"kid {kid!r} is given twice.")
    if kid:
        seen.add(kid)
    if alg is not None and alg not in ("RS256", "ES256", "EdDSA"):
        c.err(p + ("alg",), f"unsupported algorithm {alg!r}; use RS256, ES256 or EdDSA.")
        alg = None
    if (key_path is None) == (jwks_url is None):
        c.err(p, "give exactly one of path (a PEM public key) or jwks_url.")
        return None
    pem = None
    if key_path is not None:
        pem = _pem(c, p + ("path",), key_path, alg, base)
        if pem is None:
            return None
    elif jwks_url is not None and not _jwks_url_ok(jwks_url):
        c.err(p + ("jwks_url",), "must be an https:// URL.")
        return None
    return KeySpec(kid, alg, pem, jwks_url) if kid and alg else None


def _jwks_url_ok(url: str) -> bool:
    from botctl import identity

    return url.startswith("https://") or identity.is_loopback_url(url)


def _pem(c: Checker, p: Path_, key_path: str, alg: str | None, base: Path) -> str | None:
    """The PEM file's text (inside the file's folder, no links), checked against `alg` when that is known."""
    from botctl import identity

    pem = c.usage(p, lambda: read_pem(base / key_path, base, _inside(base)))
    if pem is None:
        return None
    if alg is not None and c.usage(p, lambda: identity.check_public_key(pem, alg) or True) is None:
        return None
    return pem


def read_pem(p: Path, base: Path, inside: str) -> str:
    from botctl import knowledge

    knowledge.check_path(p, within=base, label=inside)
    data = knowledge.read_file(p, limit=MAX_PEM_BYTES, within=base, label=inside)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not a PEM file (not UTF-8 text).") from None


# -- knowledge --------------------------------------------------------------------------------------------


def knowledge_docs(c: Checker, raw: Any, p: Path_, ws: WorkspaceSpec, base: Path) -> None:
    """[workspaces.X.knowledge] paths: every document read and hashed now, under the rules `apply` adds them by."""
    from botctl import knowledge

    kt = c.table(raw, p, _KNOWLEDGE_KEYS)
    paths = c.str_list(kt, "paths", p) if kt is not None else None
    if paths is None:
        return
    ws.knowledge_paths = [base / x for x in paths]
    inside = _inside(base)
    collected = c.usage(
        p + ("paths",), lambda: knowledge.collect(ws.knowledge_paths, within=base, label=inside)
    )
    if collected is None:
        return
    for f, doc_name, root in collected[0]:
        parsed = c.usage(
            p + ("paths",),
            lambda f=f, n=doc_name, r=root: knowledge.parse_document(f, n, within=r, label=inside),
        )
        if parsed is not None:
            ws.docs[parsed.name] = parsed.sha256


# -- OAuth apps -------------------------------------------------------------------------------------------


def oauth_app(c: Checker, raw: Any, p: Path_, connector_name: str) -> AppSpec | None:
    """[oauth_apps.X] or [workspaces.W.oauth_apps.X]: client id, the secret's variable, endpoint overrides."""
    from botctl import connections, oauth
    from botctl.oauth import apps as oauth_apps

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
            c.err(p + (k,), f"must be a string, not {type_name(v)}.")
    if "token_auth" not in settings and "client_secret_env" not in t:
        c.err(p + ("client_secret_env",), 'is required (or token_auth = "none" for a public client).')
    if client_id is not None and not oauth_apps.CLIENT_ID_RE.match(client_id.strip()):
        c.err(p + ("client_id",), "must be 1-512 printable characters without spaces.")
    if c.problems:
        return None
    clean = c.usage(
        p,
        lambda: oauth_apps.validate_settings(connector, settings, has_secret=ref is not None),
        keys=_same(_OAUTH_APP_KEYS),
    )
    if clean is None or client_id is None:
        return None
    own = vendor_hosts(connector)
    for k in ENDPOINTS:
        if k in clean and (urlsplit(clean[k]).hostname or "").lower() not in own:
            c.host(clean[k], p + (k,))
    return AppSpec(connector, client_id.strip(), None, clean, secret_ref=ref)


# -- connections ------------------------------------------------------------------------------------------


def connection(c: Checker, raw: Any, p: Path_, name: str) -> ConnSpec | None:
    """[workspaces.W.connections.X]: the connector's settings, the variables holding its credential, and
    the host the credential goes to when the connector does not fix it."""
    from botctl import connections

    connector = c.usage(p, lambda: connections.resolve_connector(name))
    if connector is None:
        return None
    t = c.table(raw, p, set(_CONN_SECRET_KEYS) | set(connector.config_fields) | {"sandbox"})
    if t is None:
        return None
    settings = {k: c.str_(t, k, p) for k in connector.config_fields if k in t}
    sandbox = c.str_(t, "sandbox", p) if "sandbox" in t else (os.environ.get("BOTCTL_SANDBOX") or None)
    needed = _credential_keys(c, connector, t, p)
    credential: dict[str, EnvRef] = {}
    for k in needed:
        if k not in t:
            c.err(p + (k,), "is required.")
            continue
        ref = c.env(t, k, p)
        if ref is not None:
            credential[_CONN_SECRET_KEYS[k]] = ref
    words = _same(connector.config_fields) | {"sandbox": "sandbox" if "sandbox" in t else "BOTCTL_SANDBOX"}
    config = c.usage(p, lambda: connections.resolve_config(connector, settings, sandbox), keys=words)
    if config is None:
        return None
    _connection_hosts(c, connector, config, t, p)
    if len(credential) != len(needed):
        return None
    return ConnSpec(connector, config, {}, refs=credential, where=c.where(p))


def _credential_keys(c: Checker, connector: Any, t: dict, p: Path_) -> list[str]:
    """The `*_env` keys this connector's credential needs; the wrong kind of credential is a problem."""
    if connector.auth == "api_key":
        needed = ["api_key_env"] + (["api_secret_env"] if connector.auth_style == "basic_key_secret" else [])
        if "access_token_env" in t:
            c.err(p + ("access_token_env",), f"{connector.vendor} connects with an API key: use api_key_env.")
        if "api_secret_env" in t and "api_secret_env" not in needed:
            c.err(p + ("api_secret_env",), f"{connector.vendor} takes no API secret.")
        return needed
    for k in ("api_key_env", "api_secret_env"):
        if k in t:
            c.err(
                p + (k,),
                f"{connector.vendor} connects with OAuth: give a vendor-issued token with "
                "access_token_env (run `botctl connect` for the browser flow).",
            )
    return ["access_token_env"]


def _connection_hosts(c: Checker, connector: Any, config: dict[str, str], t: dict, p: Path_) -> None:
    """Where the credential will go, when the connector does not fix it."""

    if config.get("sandbox"):
        if "sandbox" in t:
            c.host(config["sandbox"], p + ("sandbox",))
        elif not is_loopback(urlsplit(config["sandbox"]).hostname):
            c.host(config["sandbox"], None, where="BOTCTL_SANDBOX")
        return
    for f in url_settings(connector):
        if f.name in config and (
            f.default is None or host_use(config[f.name], "") != host_use(f.default, "")
        ):
            c.host(config[f.name], p + (f.name,))
