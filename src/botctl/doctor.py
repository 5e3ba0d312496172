"""`botctl doctor`: what needs attention in this home, each finding with the command that fixes it."""

from __future__ import annotations

import sqlite3
import stat
import time
from dataclasses import dataclass
from typing import Any

from botctl.home import Home

EXPIRING_SOON_S = 24 * 3600


@dataclass
class Finding:
    check: str
    status: str  # ok | warn | fail
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "message": self.message, "fix": self.fix}


def run(home: Home) -> list[Finding]:
    from botctl import masterkey, store
    from botctl.errors import BotctlError

    out: list[Finding] = []
    if not home.exists():
        return [Finding("home", "fail", f"no botctl home at {home.path}", "botctl init")]
    # Permissions: the home 0700, every file in it (and run/) 0600.
    loose = []
    for path in [home.path, *home.path.rglob("*")]:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue
        want = 0o700 if path.is_dir() else 0o600
        if path.is_socket():
            want = 0o600
        if mode & ~want & 0o777:
            loose.append(f"{path} ({mode:o})")
    out.append(
        Finding(
            "permissions",
            "fail",
            "readable by others: " + ", ".join(loose[:5]),
            f"chmod -R go-rwx {home.path}",
        )
        if loose
        else Finding("permissions", "ok", "home 0700, files 0600")
    )
    # Master key.
    loose = None
    try:
        found = masterkey.find(home)
    except BotctlError as exc:
        found = None
        out.append(Finding("master key", "fail", exc.message, exc.hint))
        loose = _loose_file_key(home)  # refused for its mode: doctor still reads the chain with it
    try:
        conn = store.open_vault(home, migrate_to_latest=False)
    except BotctlError as exc:
        if exc.code != "database_unavailable":
            raise
        out.append(Finding("database", "fail", exc.message, exc.hint))
        return out
    except sqlite3.DatabaseError as exc:
        out.append(_corrupt_vault(home, exc))
        return out + _daemon_findings(home)
    try:
        version = store.check_version(conn, store.VAULT_MIGRATIONS, what=store.where(home))
        latest = len(store.VAULT_MIGRATIONS)
        out.append(_database_finding(home, conn))
        out.append(
            Finding(
                "schema",
                "ok" if version == latest else "warn",
                f"vault schema {version} (this botctl: {latest})",
                None
                if version == latest
                else "run any botctl command that writes to upgrade, e.g. botctl init",
            )
        )
        kcv = conn.execute("SELECT value FROM meta WHERE key = 'kcv'").fetchone()
        rotation, opens = masterkey.inspect_pending(home, found, kcv[0] if kcv else None)
        if found is not None:
            if kcv and not opens:
                out.append(
                    Finding(
                        "master key",
                        "fail",
                        f"the key from {found.location} does not open this vault",
                        "use the current key (it may have been rotated)",
                    )
                )
            elif found.source == "file":
                out.append(
                    Finding(
                        "master key",
                        "warn",
                        f"in a plain file ({found.location})",
                        "move it to BOTCTL_MASTER_KEY, a systemd credential, or the OS keyring",
                    )
                )
            else:
                out.append(Finding("master key", "ok", f"from {found.source} ({found.location})"))
            if rotation is not None and opens:
                # A rotation left a pending key: where it is and what to do (never the key itself).
                out.append(
                    Finding(
                        "master-key rotation",
                        "warn" if rotation.operator_must_act else "ok",
                        f"{rotation.message} (pending rotation: {rotation.state})",
                        rotation.what_to_do if rotation.operator_must_act else None,
                    )
                )
        elif not any(f.check == "master key" for f in out):
            out.append(
                Finding(
                    "master key",
                    "fail",
                    "no master key found",
                    "set BOTCTL_MASTER_KEY or restore master.key / the keyring entry",
                )
            )
        ok, reason = masterkey.keyring_usable()
        if ok or masterkey.keyring_disabled() or (found is not None and found.source in ("env", "systemd")):
            out.append(Finding("keyring", "ok", reason if ok else f"not used ({reason})"))
        else:
            out.append(
                Finding(
                    "keyring",
                    "warn",
                    f"not usable: {reason}",
                    "install a Secret Service / Keychain backend, or use BOTCTL_MASTER_KEY",
                )
            )
        # Connections.
        now = time.time()
        from botctl import connections

        for c in connections.list_all(conn):
            if c.status != "active":
                out.append(
                    Finding(
                        "connection",
                        "fail",
                        f"{c.connector} in {c.workspace} is {c.status} "
                        f"({c.status_reason or 'no reason recorded'})",
                        f"botctl connect {c.connector} -w {c.workspace}",
                    )
                )
            else:
                exp = connections.iso_to_epoch(c.expires_at) if hasattr(connections, "iso_to_epoch") else None
                refreshable = c.auth == "oauth" and "refresh_token" in _secret_fields(conn, c)
                if exp is not None and exp - now < EXPIRING_SOON_S and not refreshable:
                    out.append(
                        Finding(
                            "connection",
                            "warn",
                            f"{c.connector} in {c.workspace} expires at {c.expires_at} "
                            "and cannot be refreshed",
                            f"botctl connect {c.connector} -w {c.workspace}",
                        )
                    )
        if not any(f.check == "connection" for f in out):
            out.append(Finding("connections", "ok", "none need re-authorisation"))
        # Audit chain.
        if found is not None and kcv and opens:
            from botctl import audit
            from botctl.vault import Vault

            with Vault.open(home) as v:  # opening finishes a shred a reader had blocked, if it can now
                verdict = audit.verify(home, v.audit_key(), v.conn)
                if v.shred_pending:
                    out.append(
                        Finding(
                            "shredding",
                            "warn",
                            "deleted key material is still on disk: another "
                            "process holds an old snapshot of vault.db",
                            "finish or stop what keeps the vault open (a long backup?), then run "
                            "botctl doctor again",
                        )
                    )
            out.append(
                Finding("audit", "ok", f"chain intact ({verdict.records} records)")
                if verdict.ok
                else Finding(
                    "audit",
                    "fail",
                    f"chain broken at record {verdict.first_bad_seq}: {verdict.problem}",
                    "botctl audit verify (keep copies of audit.db and vault.db first); to record the break "
                    "and resume: botctl audit seal-break --reason TEXT",
                )
            )
        elif loose is not None and kcv and _opens(loose, kcv[0]):
            from botctl import audit
            from botctl.vault import Vault

            verdict = audit.verify(home, Vault(home, conn, loose).audit_key(), conn)
            note = " (checked with the master.key refused above; fix its mode)"
            out.append(
                Finding("audit", "ok", f"chain intact ({verdict.records} records){note}")
                if verdict.ok
                else Finding(
                    "audit",
                    "fail",
                    f"chain broken at record {verdict.first_bad_seq}: {verdict.problem}{note}",
                    "botctl audit verify (keep copies of audit.db and vault.db first)",
                )
            )
        else:  # never silently skipped: checking the chain needs a key that opens the vault
            out.append(
                Finding(
                    "audit",
                    "warn",
                    "chain not checked: that needs a master key that opens the vault "
                    '(see "master key"); fix it and run botctl doctor again',
                )
            )
    except sqlite3.DatabaseError as exc:
        out.append(_corrupt_vault(home, exc))
    finally:
        conn.close()
    # Audit sinks and alert webhooks: a backlog that is not draining.
    from botctl.audit import alerting, shipping
    from botctl.audit.reporting import shipping_problems

    try:
        sinks, hooks = shipping.backlog(home), alerting.status(home)
    except BotctlError as exc:
        out.append(Finding("audit shipping", "fail", exc.message, exc.hint))
    else:
        problems = shipping_problems(sinks, hooks)
        for message, fix in problems:
            out.append(Finding("audit shipping", "warn", message, fix))
        recent = alerting.recent(home)
        if recent:
            more = f" (and {len(recent) - 3} more)" if len(recent) > 3 else ""
            out.append(
                Finding(
                    "recent alerts",
                    "warn",
                    f"{len(recent)} in the last 24 h: " + "; ".join(e["summary"] for e in recent[-3:]) + more,
                    "botctl daemon logs; botctl audit --event connection.refresh_failed",
                )
            )
        if (sinks or hooks) and not problems:
            out.append(
                Finding(
                    "audit shipping", "ok", f"{len(sinks)} sink(s), {len(hooks)} alert webhook(s) delivering"
                )
            )
    return out + _daemon_findings(home)


def _daemon_findings(home: Home) -> list[Finding]:
    out: list[Finding] = []
    from botctl import daemon

    st = daemon.status(home)
    if st["running"]:
        reachable = st.get("provider", {}).get("reachable")
        edge = st["edge"].get("address") or "external"
        out.append(
            Finding(
                "daemon",
                "ok" if reachable else "fail",
                f"running (provider pid {st['provider']['pid']}, edge {edge})",
                None if reachable else "botctl daemon logs; botctl daemon stop && botctl daemon start",
            )
        )
    else:
        out.append(
            Finding(
                "daemon",
                "warn" if st.get("last_error") else "ok",
                "not running" + (f" (last error: {st['last_error']})" if st.get("last_error") else ""),
                "botctl daemon start" if st.get("last_error") else None,
            )
        )
    out.append(_isolation_finding(st))
    return out + _cluster_findings(home)


def _cluster_findings(home: Home) -> list[Finding]:
    """Certificates of the mutual-TLS link (docs/deployment.md) expiring within a week, or expired."""
    from botctl.cluster import pki
    from botctl.errors import BotctlError

    try:
        due = pki.expiring(home.path)
    except (OSError, ValueError, BotctlError) as exc:
        return [
            Finding("cluster certificates", "warn", f"cannot read them ({exc})", "botctl cluster cert list")
        ]
    return [
        Finding(
            "cluster certificates",
            "fail" if c["expired"] and c["role"] == "provider" else "warn",
            f"{c['role']} certificate {c['name']} {'expired' if c['expired'] else 'expires'} {c['not_after'][:16]}"
            + (": remote edges cannot connect" if c["role"] == "provider" and c["expired"] else ""),
            f"botctl cluster cert issue {c['name']}"
            + (
                " (then restart the daemon)"
                if c["role"] == "provider"
                else " (copy it to the edge host, restart the edge)"
            ),
        )
        for c in due
    ]


def _isolation_finding(st: dict) -> Finding:
    """How the edge is kept from the keys: what the running daemon has, or what a start here would get."""
    from botctl import isolation

    if st["running"]:
        mode = (st.get("isolation") or {}).get("mode", "none")
        prefix = ""
    else:
        try:
            mode = isolation.plan("auto").mode
        except Exception:
            mode = "none"
        prefix = "a start here would get "
    text = f"{prefix}{mode}: {isolation.describe(mode)}"
    if mode == "none":
        return Finding(
            "isolation",
            "warn",
            text,
            "start the daemon as root (the edge then runs as its own user), "
            "use the systemd units, or run on Linux 5.13+ with Landlock enabled",
        )
    return Finding("isolation", "ok", text)


def _database_finding(home: Home, conn) -> Finding:  # noqa: ANN001
    from botctl import store
    from botctl.vault import Vault

    db = Vault(home, conn, None).database()
    text = f"{db['backend']} {db['server_version']} at {db['location']}, schema vault {store.schema_version(conn)}"
    return Finding("database", "ok", text)


def _secret_fields(conn, c) -> set[str]:  # noqa: ANN001
    return {
        r[0]
        for r in conn.execute(
            "SELECT field FROM secrets WHERE workspace_id = ? AND owner = ?", (c.workspace_id, c.id)
        )
    }


def _loose_file_key(home: Home) -> Any:
    """The key in a master.key that botctl refuses because others may read it (None if it is not that)."""
    from botctl import masterkey
    from botctl.errors import BotctlError

    path = home.master_key_file
    try:
        if not path.exists() or not path.stat().st_mode & 0o077:
            return None
        return masterkey.MasterKey(masterkey.decode(path.read_text(), origin=str(path)), "file", str(path))
    except (OSError, BotctlError):
        return None


def _opens(key: Any, kcv: str) -> bool:
    import hmac

    from botctl import crypto

    return hmac.compare_digest(crypto.key_check_value(key.key), kcv)


def _corrupt_vault(home: Home, exc: Exception) -> Finding:
    return Finding(
        "vault",
        "fail",
        f"{home.vault_db} cannot be read as a database ({exc})",
        "restore vault.db from your backup (it opens with the same master key); keep the damaged file "
        "for inspection",
    )


def needs_action(findings: list[Finding], *, strict: bool = False) -> bool:
    """A failure needs action; a warning only under --strict (a file key on a headless server is a choice)."""
    return any(f.status == "fail" or (strict and f.status == "warn" and f.fix) for f in findings)
