"""`plan`: compare a `Spec` with the vault and return one `Step` per object. Reading only; stored secrets
are decrypted in memory to compare them with the environment, never shown. One planner per section."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botctl.provision import runners
from botctl.provision.spec import AppSpec, ConnSpec, KeySpec, Spec, WorkspaceSpec
from botctl.provision.steps import Result, Step, fail, kv, same_secret, show

if TYPE_CHECKING:
    from botctl.session import Session
    from botctl.workspaces import Workspace


@dataclass
class _Target:
    """One workspace of the file and what the vault holds under its name (`cur`; None: to be created)."""

    app: Session | None
    spec: Spec
    ws: WorkspaceSpec
    cur: Workspace | None

    @property
    def name(self) -> str:
        return self.ws.name

    @property
    def conn(self) -> Any:
        return self.app.vault.conn if self.app is not None else None

    def get(self) -> Workspace:
        """The workspace as it is when a step runs (created by an earlier step, perhaps)."""
        from botctl import workspaces

        return workspaces.get(self.app.vault.conn, self.name) if self.app is not None else None  # type: ignore[return-value]

    def step(self, action: str, kind: str, name: str, detail: str = "", run: Any = None) -> Step:
        return Step(action, kind, name, detail, run=run, workspace=self.name)


def plan(
    app: Session | None,
    spec: Spec,
    *,
    prune: bool = False,
    reconnect: bool = False,
    secrets_out: Path | None = None,
    result: Result | None = None,
) -> list[Step]:
    """The steps that make the vault match `spec` (app None: an empty vault, for a dry run on a new home)."""
    from botctl import workspaces

    existing = {w.name: w for w in workspaces.list_all(app.vault.conn)} if app is not None else {}
    steps = plan_apps(app, None, None, spec.global_apps, prune=False)
    for name, ws_spec in spec.workspaces.items():
        t = _Target(app, spec, ws_spec, existing.get(name))
        steps.append(_workspace_step(t))
        steps += _identity_settings_steps(t)
        steps += _identity_key_steps(t, secrets_out, result)
        steps += _knowledge_steps(t)
        steps += plan_apps(app, t.cur, name, ws_spec.oauth_apps, prune=prune)
        steps += _connection_steps(t, prune=prune, reconnect=reconnect)
    if prune:
        steps += [
            Step(
                "delete",
                "workspace",
                name,
                "not in the file (--prune); its key is destroyed",
                run=lambda n=name: workspaces.delete(app, n),
            )
            for name in existing
            if name not in spec.workspaces
        ]
    return steps


# -- the workspace ----------------------------------------------------------------------------------------


def _workspace_step(t: _Target) -> Step:
    from botctl import workspaces

    app, name = t.app, t.name
    if t.cur is None:
        f = dict(t.ws.fields)
        detail = ", ".join(f"{k} {v!r}" for k, v in f.items() if k != "origins")
        if f.get("origins"):
            detail += (", " if detail else "") + "origins " + " ".join(f["origins"])
        return Step(
            "create",
            "workspace",
            name,
            detail or "defaults",
            workspace=name,
            creates_workspace=True,
            run=lambda: workspaces.create(
                app,
                name,
                plan=f.get("plan", "free"),
                origins=f.get("origins"),
                display_name=f.get("display_name"),
            ),
        )
    cur = t.cur
    changes = {
        k: v
        for k, v in t.ws.fields.items()
        if (list(cur.origins) if k == "origins" else getattr(cur, k)) != v
    }
    if not changes:
        return t.step("unchanged", "workspace", name)
    detail = "; ".join(f"{k}: {show(getattr(cur, k))} -> {show(v)}" for k, v in changes.items())
    return t.step("update", "workspace", name, detail, run=lambda: workspaces.update(app, name, **changes))


# -- identity ---------------------------------------------------------------------------------------------


def _identity_settings_steps(t: _Target) -> list[Step]:
    """issuer and max_lifetime, when the file manages them."""
    from botctl import identity

    ws = t.ws
    if ws.issuer is None and ws.max_lifetime is None:
        return []
    cur_iss, cur_life = identity.settings(t.conn, t.cur) if t.cur is not None else (None, None)
    want_iss = ws.issuer if ws.issuer is not None else cur_iss
    kwargs: dict[str, Any] = {}
    parts = []
    if ws.issuer is not None and (ws.issuer or None) != cur_iss:
        kwargs.update({"clear_issuer": True} if not ws.issuer else {"issuer": ws.issuer})
        parts.append(f"issuer {show(cur_iss)} -> {show(want_iss or None)}")
    if ws.max_lifetime is not None and ws.max_lifetime != cur_life:
        kwargs["max_lifetime"] = ws.max_lifetime
        parts.append(f"max_lifetime {cur_life if cur_life is not None else 'default'} -> {ws.max_lifetime}s")
    if not kwargs:
        return [t.step("unchanged", "identity", t.name)]
    app, get = t.app, t.get
    return [
        t.step(
            "update" if t.cur else "create",
            "identity",
            t.name,
            "; ".join(parts),
            run=lambda: identity.set_settings(app, get(), **kwargs),
        )
    ]


def _identity_key_steps(t: _Target, secrets_out: Path | None, result: Result | None) -> list[Step]:
    """The public keys the file lists, then (hs256 = true) an HS256 secret unless a live one exists."""
    from botctl import identity

    keys = {k.kid: k for k in identity.list_keys(t.conn, t.cur)} if t.cur is not None else {}
    steps = [_public_key_step(t, ks, keys.get(ks.kid)) for ks in t.ws.keys]
    if not t.ws.hs256:
        return steps
    now = identity.iso(time.time())
    live = [k for k in keys.values() if k.kind == "secret" and k.active(now)]
    if live:
        steps.append(t.step("unchanged", "identity_key", f"{t.name}/hs256", f"HS256 secret {live[-1].kid}"))
    else:
        where = f"written to {secrets_out}" if secrets_out else "shown once"
        steps.append(
            t.step(
                "create",
                "identity_key",
                f"{t.name}/hs256",
                f"new HS256 secret ({where})",
                run=runners.rotate_hs256(t.app, t.get, t.name, secrets_out, result),
            )
        )
    return steps


def _public_key_step(t: _Target, ks: KeySpec, have: Any) -> Step:
    kname = f"{t.name}/{ks.kid}"
    what = f"{ks.alg} " + ("public key" if ks.pem else f"JWKS {ks.jwks_url}")
    if have is None:
        return t.step("create", "identity_key", kname, what, run=runners.add_key(t.app, t.get, ks))
    if (have.alg, (have.public_key or "").strip() or None, have.jwks_url) == (
        ks.alg,
        (ks.pem or "").strip() or None,
        ks.jwks_url,
    ):
        return t.step("unchanged", "identity_key", kname, what)
    if have.kind == "secret":
        return t.step(
            "update",
            "identity_key",
            kname,
            "kid is an HS256 secret here",
            run=fail(
                f"kid {ks.kid!r} is an HS256 secret in this workspace; give the public key another kid."
            ),
        )
    return t.step(
        "update", "identity_key", kname, f"replaced by {what}", run=runners.replace_key(t.app, t.get, ks)
    )


# -- knowledge --------------------------------------------------------------------------------------------


def _knowledge_steps(t: _Target) -> list[Step]:
    """One step per document; the changed ones share one `knowledge.add` of the workspace's paths."""
    from botctl import knowledge

    if not t.ws.docs:
        return []
    stored = {d.name: d.sha256 for d in knowledge.list_docs(t.conn, t.cur)} if t.cur is not None else {}
    add = runners.add_docs(t.app, t.get, t.ws.knowledge_paths, t.spec.base)
    steps = []
    for doc, sha in sorted(t.ws.docs.items()):
        dname = f"{t.name}/{doc}"
        if doc not in stored:
            steps.append(t.step("create", "knowledge", dname, f"sha256 {sha[:12]}", run=add))
        elif stored[doc] != sha:
            steps.append(
                t.step("update", "knowledge", dname, f"sha256 {stored[doc][:12]} -> {sha[:12]}", run=add)
            )
        else:
            steps.append(t.step("unchanged", "knowledge", dname, f"sha256 {sha[:12]}"))
    return steps


# -- OAuth apps -------------------------------------------------------------------------------------------


def plan_apps(
    app: Session | None, cur: Workspace | None, ws_name: str | None, apps: dict[str, AppSpec], *, prune: bool
) -> list[Step]:
    """The global OAuth apps (`ws_name` None) or one workspace's; with `prune`, that workspace's others go."""
    from botctl.oauth import apps as oauth_apps

    conn = app.vault.conn if app is not None else None
    steps = []
    for cname, a in apps.items():
        have = (
            oauth_apps.find(conn, cname, cur)
            if conn is not None and (cur is not None or ws_name is None)
            else None
        )
        steps.append(_app_step(app, cur, ws_name, a, have))
    if prune and cur is not None and conn is not None:
        scope = ws_name or "global"
        steps += [
            Step(
                "delete",
                "oauth_app",
                f"{scope}/{have.connector}",
                "not in the file (--prune)",
                workspace=ws_name,
                run=_remove_app(app, ws_name, have.connector),
            )
            for have in oauth_apps.list_all(conn)
            if have.workspace_id == cur.id and have.connector not in apps
        ]
    return steps


def _app_step(app: Session | None, cur: Workspace | None, ws_name: str | None, a: AppSpec, have: Any) -> Step:
    from botctl import workspaces
    from botctl.oauth import apps as oauth_apps

    label = f"{ws_name or 'global'}/{a.connector.name}"

    def run() -> Any:
        ws = workspaces.get(app.vault.conn, ws_name) if ws_name else None  # type: ignore[union-attr]
        return oauth_apps.set_app(
            app,
            a.connector,
            ws=ws,
            client_id=a.client_id,  # type: ignore[arg-type]
            client_secret=a.secret,
            settings=a.settings,
        )

    if have is None:
        return Step("create", "oauth_app", label, f"client_id {a.client_id}", workspace=ws_name, run=run)
    reasons = []
    if have.client_id != a.client_id:
        reasons.append(f"client_id {have.client_id} -> {a.client_id}")
    if have.settings != a.settings:
        reasons.append("settings " + kv(have.settings) + " -> " + kv(a.settings))
    if not reasons and not same_secret(oauth_apps.client_secret(app, have, cur), a.secret):  # type: ignore[arg-type]
        reasons.append("client secret changed in the environment")
    if reasons:
        return Step("update", "oauth_app", label, "; ".join(reasons), workspace=ws_name, run=run)
    return Step("unchanged", "oauth_app", label, f"client_id {a.client_id}", workspace=ws_name)


def _remove_app(app: Session | None, ws_name: str | None, connector: str) -> Any:
    from botctl import workspaces
    from botctl.oauth import apps as oauth_apps

    return lambda: oauth_apps.remove(app, connector, workspaces.get(app.vault.conn, ws_name))  # type: ignore[union-attr,arg-type]


# -- connections ------------------------------------------------------------------------------------------


def _connection_steps(t: _Target, *, prune: bool, reconnect: bool) -> list[Step]:
    from botctl import connections

    existing = {c.connector: c for c in connections.list_all(t.conn, t.cur)} if t.cur is not None else {}
    steps = []
    for cname, cs in t.ws.connections.items():
        label = f"{t.name}/{cname}"
        have = existing.get(cname)
        run = runners.connect(t.app, t.get, cs)
        if have is None:
            shown = {k: v for k, v in cs.config.items() if k != "base_url_resolved"}
            steps.append(t.step("create", "connection", label, kv(shown) or cs.connector.auth, run=run))
            continue
        reasons = _connection_changes(t, cs, have, reconnect=reconnect)
        if reasons:
            steps.append(t.step("update", "connection", label, "; ".join(reasons), run=run))
        else:
            steps.append(t.step("unchanged", "connection", label, have.account_label or ""))
    if prune and t.cur is not None:
        steps += [
            t.step(
                "delete",
                "connection",
                f"{t.name}/{cname}",
                "not in the file (--prune)",
                run=runners.disconnect(t.app, t.get, have),
            )
            for cname, have in existing.items()
            if cname not in t.ws.connections
        ]
    return steps


def _connection_changes(t: _Target, cs: ConnSpec, have: Any, *, reconnect: bool) -> list[str]:
    """Why a stored connection must be connected again: its settings, its status, the secret, --reconnect."""
    from botctl import connections

    shown = {k: v for k, v in cs.config.items() if k != "base_url_resolved"}
    have_cfg = {k: v for k, v in have.config.items() if not k.startswith(connections.OAUTH_PREFIX)}
    reasons = []
    if have_cfg != cs.config:
        reasons.append("config " + kv(dict(have.public_config().items())) + " -> " + kv(shown))
    if have.status != "active":
        reasons.append(f"status {have.status}")
    if not reasons:
        stored = connections.credential(t.app, t.cur, have)  # type: ignore[arg-type]
        if set(stored) - {"refresh_token"} != set(cs.credential) or not all(
            same_secret(stored.get(k), v) for k, v in cs.credential.items()
        ):
            reasons.append("credential changed in the environment")
    if reconnect and not reasons:
        reasons.append("--reconnect")
    return reasons
