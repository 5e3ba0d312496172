"""The vault: `vault.db`, the master key that opens it, workspace keys, and encrypted secrets.

Everything that decrypts goes through here. Plaintext secrets leave only as `Secret`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botctl import store
from botctl.errors import BotctlError, Conflict, MasterKeyError, UsageError
from botctl.home import Home
from botctl.secret import Secret

if TYPE_CHECKING:
    from botctl.masterkey import MasterKey, PendingRotation

# crypto and masterkey are imported inside the methods that use them: listing workspaces needs
# neither, and every millisecond of start-up is paid on each TAB press.

AUDIT_ROOT = "audit-root"
SHRED_PENDING = (
    "shred_pending"  # meta: a shred's checkpoint was blocked by a reader; finish it at the next open
)
SHRED_DEADLINE_S = 5.0
# PostgreSQL: sessions anywhere on the server (other databases too: their snapshots hold back VACUUM here)
# whose transaction or snapshot is older than the transaction id `?`.
_OLDER_SNAPSHOTS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND ("
    "(backend_xmin IS NOT NULL AND age(backend_xmin) > age(?::xid)) OR "
    "(backend_xid IS NOT NULL AND age(backend_xid) > age(?::xid)))"
)


@dataclass(frozen=True)
class WorkspaceRef:
    """The two names a workspace's keys are bound to: its row id and its name (in every AAD)."""

    id: str
    name: str


class Vault:
    def __init__(self, home: Home, conn: Any, master: MasterKey | None) -> None:
        self.home = home
        self.conn = conn
        self._master = master
        self._deks: dict[tuple[str, int], bytes] = {}
        self._audit_key: bytes | None = None
        self.just_initialized = False  # this open created the vault's keys (first use)
        # Set when an env/systemd source still holds the key a committed rotation replaced: the vault
        # is open with the pending key (master.key.next) instead.
        self.pending_rotation: PendingRotation | None = None

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, home: Home, *, create: bool = False, need_key: bool = True, key_store: str = "auto"
    ) -> Vault:
        """Open the vault, migrating it to this botctl's schema.

        `create`: make the home, vault and (if no source has one) a master key on first use.
        `need_key`: find and check the master key now (read-only listings do not need it).
        """
        if not home.exists():
            if not create:
                raise BotctlError(
                    f"no botctl home at {home.path}.",
                    hint="Run `botctl init` (or pass --home / set BOTCTL_HOME to an existing home).",
                    code="not_initialised",
                )
            home.ensure()
        conn = store.open_vault(home)
        try:
            vault = cls(home, conn, None)
            if need_key or vault._meta("kcv") is None:
                vault._load_master_key(create=create, key_store=key_store)
            if vault._meta(SHRED_PENDING):
                vault.shred(deadline_s=1.0)  # a delete whose checkpoint a reader blocked: finish it now
        except BaseException:
            conn.close()
            raise
        return vault

    @classmethod
    def open_readonly(cls, home: Home) -> Vault | None:
        """For listings: None when there is no home yet; never creates, migrates or needs the key."""
        if not home.exists():
            return None
        return cls(home, store.open_vault(home), None)

    def close(self) -> None:
        self.conn.close()

    def shred(self, *, deadline_s: float = SHRED_DEADLINE_S) -> bool:
        """Make deleted key material unrecoverable on disk: checkpoint the WAL into vault.db (whose freed
        pages secure_delete zeroed) and truncate the WAL. A reader holding an older snapshot (the daemon
        mid-query, a `.backup`) blocks that, so it is retried until `deadline_s`. Returns False when it
        is still blocked: the vault then remembers it (meta `shred_pending`) and the next open finishes.
        """
        import time

        conn = self.conn
        if store.dialect(conn) == "postgresql":
            return self._vacuum(deadline_s)
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 100")
        try:
            end = time.monotonic() + deadline_s
            while True:
                busy, log, _moved = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy == 0 or log == -1:  # done (WAL emptied), or not in WAL mode at all
                    if self._meta(SHRED_PENDING):
                        with store.transaction(conn):
                            conn.execute("DELETE FROM meta WHERE key = ?", (SHRED_PENDING,))
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    return True
                if time.monotonic() >= end:
                    break
                time.sleep(0.05)
            try:
                with store.transaction(conn):
                    self._set_meta(SHRED_PENDING, store.now_iso())
            except store.OperationalError:
                pass  # could not even note it: the caller still reports the shred as pending
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")

    def _vacuum(self, deadline_s: float) -> bool:
        """PostgreSQL: rewrite the key and secret tables without their dead rows (VACUUM FULL: new files, the
        old ones emptied). VACUUM FULL copies a dead row that a snapshot anywhere on the server may still see
        (measured: every time while another session runs CREATE DATABASE, and it then reports "N dead row
        versions cannot be removed yet"). So each table is rewritten until VACUUM reports no more rows kept
        than are live (or, when its report cannot be read, until no session on the server holds a snapshot
        from before this call), until `deadline_s`; if it cannot, the shred
        is pending (doctor says so) and the next open finishes it, as on SQLite. Under the write lock, so no
        row is added meanwhile. What PostgreSQL may still hold (WAL, base backups, replicas) is in README."""
        import re
        import time

        from botctl.postgres.connection import WRITE_LOCK

        conn = self.conn
        end = time.monotonic() + deadline_s
        notes: list[str] = []

        def note(diag) -> None:  # noqa: ANN001 - psycopg's Diagnostic
            notes.append(diag.message_primary or "")

        conn.raw.add_notice_handler(note)
        conn.execute("SELECT pg_advisory_lock(?)", (WRITE_LOCK,))
        try:
            (mark,) = conn.execute(
                "SELECT pg_current_xact_id()::text"
            ).fetchone()  # after the delete's commit
            conn.execute(f"SET lock_timeout = {max(int(deadline_s * 1000), 100)}")
            for table in ("workspace_keys", "secrets", "wrapped_keys"):
                while True:
                    quiet = not conn.execute(_OLDER_SNAPSHOTS_SQL, (mark, mark)).fetchone()[0]
                    notes.clear()
                    conn.execute(f"VACUUM (FULL, VERBOSE) {table}")
                    (live,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                    kept = [int(m.group(1)) for n in notes if (m := re.search(r"(\d+) nonremovable", n))]
                    # VACUUM's own count decides; a server speaking another language than English gives none,
                    # and then only a server without any older snapshot does.
                    if all(k <= live for k in kept) if kept else quiet:
                        break
                    if time.monotonic() >= end:
                        return self._shred_blocked()
                    time.sleep(0.05)
        except store.OperationalError:
            return self._shred_blocked()
        finally:
            conn.raw.remove_notice_handler(note)
            conn.execute("SET lock_timeout = 0")
            conn.execute("SELECT pg_advisory_unlock(?)", (WRITE_LOCK,))
        if self._meta(SHRED_PENDING):
            conn.execute("DELETE FROM meta WHERE key = ?", (SHRED_PENDING,))
        return True

    def _shred_blocked(self) -> bool:
        with store.transaction(self.conn):
            self._set_meta(SHRED_PENDING, store.now_iso())
        return False

    @property
    def shred_pending(self) -> bool:
        return self._meta(SHRED_PENDING) is not None

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _load_master_key(self, *, create: bool, key_store: str) -> None:
        from botctl import crypto, masterkey

        kcv = self._meta("kcv")
        found = masterkey.find(self.home)
        if kcv is None:
            if found is None:
                if not create:
                    raise MasterKeyError("this vault has no master key yet.", hint="Run `botctl init`.")
                found = masterkey.store_new(self.home, crypto.new_key(), prefer=key_store)  # type: ignore[arg-type]
            with store.transaction(self.conn):
                if self._meta("kcv") is None:  # another process may have initialised meanwhile
                    self._set_meta("kcv", crypto.key_check_value(found.key))
                    self._set_meta("kek_version", "1")
                    self._set_meta("created_at", store.now_iso())
                    self.conn.execute(
                        "INSERT INTO wrapped_keys (name, wrapped, created_at) VALUES (?, ?, ?)",
                        (
                            AUDIT_ROOT,
                            crypto.wrap_key(found.key, crypto.new_key(), crypto.AUDIT_ROOT_AAD),
                            store.now_iso(),
                        ),
                    )
                    self.just_initialized = True
            kcv = self._meta("kcv")
        if found is None:
            raise MasterKeyError(
                f"no master key found for {self.home.path}.",
                hint="Set BOTCTL_MASTER_KEY, provide the systemd credential botctl-master-key, "
                "or restore master.key / the keyring entry.",
            )
        if masterkey.recover_pending(self.home, found) is not None:
            found = self._settle_pending(found)
        elif crypto.key_check_value(found.key) != kcv:
            raise self._wrong_key(found)
        self._master = found

    @staticmethod
    def _wrong_key(found: MasterKey) -> MasterKeyError:
        return MasterKeyError(
            f"the master key from {found.location} does not open this vault.",
            hint="It may have been rotated; use the current key (see `botctl vault status`).",
        )

    def _settle_pending(self, found: MasterKey) -> MasterKey:
        """A pending key lies beside `found`: decide, under the vault's write lock, what it means.

        A rotation holds that lock from before it stores its pending key until its COMMIT, so here the
        KCV and the pending key are both final: never a rotation's key deleted while it is running.
        """
        import contextlib
        import sys

        from botctl import crypto, masterkey

        lock = contextlib.nullcontext() if self.conn.in_transaction else store.transaction(self.conn)
        with lock:
            kcv = self._meta("kcv")
            found = masterkey.find(self.home) or found  # a rotation may have promoted its key meanwhile
            pending = masterkey.recover_pending(self.home, found)
            found_opens = crypto.key_check_value(found.key) == kcv
            if pending is None:
                if found_opens:
                    return found
                raise self._wrong_key(found)
            if found_opens:
                # Never committed (stale), or the source already holds it (superseded): either way unused.
                masterkey.discard_pending(self.home, found)
                return found
            if crypto.key_check_value(pending.key) != kcv:
                raise self._wrong_key(found)
            if found.source in masterkey.ROTATION_SOURCES_KEPT:
                return masterkey.promote_pending(
                    self.home, found, pending.key
                )  # finish an interrupted rotation
            rotation = masterkey.PendingRotation(
                "committed", pending.location, found.source, masterkey.source_description(found)
            )
            self.pending_rotation = rotation
            sys.stderr.write(f"warning: {rotation.message}. {rotation.what_to_do}\n")
            return masterkey.MasterKey(pending.key, found.source, pending.location)

    @property
    def master(self) -> MasterKey:
        if self._master is None:
            self._load_master_key(create=False, key_store="auto")
        assert self._master is not None
        return self._master

    # -- workspace keys ----------------------------------------------------------------------------

    def create_workspace_key(self, ws: WorkspaceRef) -> None:
        """Call inside the transaction that creates the workspace."""
        from botctl import crypto

        self._insert_dek(ws, 1, crypto.new_key())

    def _insert_dek(self, ws: WorkspaceRef, version: int, dek: bytes) -> None:
        from botctl import crypto

        self.conn.execute(
            "INSERT INTO workspace_keys (workspace_id, version, wrapped, created_at) VALUES (?, ?, ?, ?)",
            (
                ws.id,
                version,
                crypto.wrap_key(self.master.key, dek, crypto.dek_aad(ws.name, version)),
                store.now_iso(),
            ),
        )
        self._deks[(ws.id, version)] = dek

    def _current_dek_version(self, ws: WorkspaceRef) -> int:
        row = self.conn.execute(
            "SELECT max(version) FROM workspace_keys WHERE workspace_id = ?", (ws.id,)
        ).fetchone()
        if row[0] is None:
            raise BotctlError(f"workspace {ws.name!r} has no key (was it deleted?).", code="no_workspace_key")
        return int(row[0])

    def _dek(self, ws: WorkspaceRef, version: int) -> bytes:
        from botctl import crypto

        cached = self._deks.get((ws.id, version))
        if cached is not None:
            return cached
        row = self.conn.execute(
            "SELECT wrapped FROM workspace_keys WHERE workspace_id = ? AND version = ?", (ws.id, version)
        ).fetchone()
        if row is None:
            raise BotctlError(f"workspace {ws.name!r} has no key version {version}.", code="no_workspace_key")
        dek = crypto.unwrap_key(self.master.key, row[0], crypto.dek_aad(ws.name, version))
        self._deks[(ws.id, version)] = dek
        return dek

    # -- secrets -----------------------------------------------------------------------------------

    def put_secret(self, ws: WorkspaceRef, owner: str, field: str, value: Secret) -> None:
        from botctl import crypto

        version = self._current_dek_version(ws)
        blob = crypto.encrypt(
            self._dek(ws, version), value.reveal().encode(), crypto.secret_aad(ws.name, owner, field)
        )
        self.conn.execute(
            "INSERT INTO secrets (workspace_id, owner, field, dek_version, ciphertext, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(workspace_id, owner, field) DO UPDATE SET dek_version = excluded.dek_version, "
            "ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            (ws.id, owner, field, version, blob, store.now_iso()),
        )

    def get_secret(self, ws: WorkspaceRef, owner: str, field: str) -> Secret | None:
        from botctl import crypto

        row = self.conn.execute(
            "SELECT dek_version, ciphertext FROM secrets WHERE workspace_id = ? AND owner = ? AND field = ?",
            (ws.id, owner, field),
        ).fetchone()
        if row is None:
            return None
        plain = crypto.decrypt(self._dek(ws, row[0]), row[1], crypto.secret_aad(ws.name, owner, field))
        return Secret(plain.decode())

    def delete_secrets(self, ws: WorkspaceRef, owner: str) -> int:
        cur = self.conn.execute("DELETE FROM secrets WHERE workspace_id = ? AND owner = ?", (ws.id, owner))
        return cur.rowcount

    def secret_fields(self, ws: WorkspaceRef, owner: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT field FROM secrets WHERE workspace_id = ? AND owner = ? ORDER BY field", (ws.id, owner)
        )
        return [r[0] for r in rows]

    # -- rotation ----------------------------------------------------------------------------------

    def rotate_workspace_key(self, ws: WorkspaceRef) -> int:
        """New DEK; re-encrypt every secret of `ws` under it; drop the old DEKs. Caller holds a transaction."""
        from botctl import crypto

        old_version = self._current_dek_version(ws)
        new_version = old_version + 1
        self._insert_dek(ws, new_version, crypto.new_key())
        rows = self.conn.execute(
            "SELECT owner, field, dek_version, ciphertext FROM secrets WHERE workspace_id = ?", (ws.id,)
        ).fetchall()
        for owner, field, version, blob in rows:
            aad = crypto.secret_aad(ws.name, owner, field)
            plain = crypto.decrypt(self._dek(ws, version), blob, aad)
            self.conn.execute(
                "UPDATE secrets SET dek_version = ?, ciphertext = ?, updated_at = ? "
                "WHERE workspace_id = ? AND owner = ? AND field = ?",
                (
                    new_version,
                    crypto.encrypt(self._dek(ws, new_version), plain, aad),
                    store.now_iso(),
                    ws.id,
                    owner,
                    field,
                ),
            )
        self.conn.execute(
            "DELETE FROM workspace_keys WHERE workspace_id = ? AND version < ?", (ws.id, new_version)
        )
        for key in [k for k in self._deks if k[0] == ws.id and k[1] < new_version]:
            del self._deks[key]
        return new_version

    def forget_workspace_keys(self, ws: WorkspaceRef) -> None:
        for key in [k for k in self._deks if k[0] == ws.id]:
            del self._deks[key]

    def rotate_master_key(
        self,
        record: Callable[[dict[str, Any]], object],
        *,
        new_key: bytes | None = None,
        announce: Callable[[bytes, str | None], None] | None = None,
    ) -> tuple[MasterKey, int]:
        """Re-wrap every DEK and wrapped key under a new KEK, recorded in the same vault transaction.

        `record({"key_version", "kcv"})` appends the audit record (`app.audit(...)`) with that detail;
        it runs after the re-wrap, inside the still-open transaction, so a rotation that cannot be
        recorded rolls back. `new_key`: the operator's key (None: generate one). `announce(key,
        pending_location)` runs once the key is stored as pending and before anything is re-wrapped
        (the CLI shows a generated env/systemd key there). Returns the new MasterKey (promoted where
        botctl keeps keys) and the new KEK version. Failpoints (test-only, botctl/failpoints.py) mark
        every step of the protocol; docs/architecture.md "Master-key rotation" has the whole of it.
        """
        from botctl import crypto, failpoints, masterkey

        old = self.master
        if self.pending_rotation is not None:
            raise Conflict(
                f"a previous master-key rotation is not finished: {self.pending_rotation.message}.",
                hint=self.pending_rotation.what_to_do + " Then rotate again.",
                code="rotation_pending",
            )
        generated = new_key is None
        new_key = crypto.new_key() if new_key is None else new_key
        if new_key == old.key:
            raise UsageError(
                "the new master key is the one in use.", hint="Give a different key, or none to generate one."
            )
        # A key botctl made must be written down before it protects anything; a key the operator gave
        # (env/systemd) is theirs to keep, and is not copied beside the vault.
        keep_pending = generated or old.source in masterkey.ROTATION_SOURCES_KEPT
        with store.transaction(self.conn):  # the write lock: held from before the pending key exists
            if self._meta("kcv") != crypto.key_check_value(old.key):
                # Another rotation committed since this vault was opened: its pending key must not be
                # overwritten (or deleted) by this one.
                raise Conflict(
                    "the master key was rotated by another process meanwhile; nothing was changed.",
                    hint="Run the command again.",
                    code="rotation_conflict",
                )
            self.audit_key()  # derived (and kept) now, while its root is still wrapped by the old key
            try:
                where = masterkey.store_pending(self.home, old, new_key) if keep_pending else None
                if announce is not None:
                    announce(new_key, where)
                failpoints.hit("rotate.pending_stored")
                for ws_id, name, version, wrapped in self.conn.execute(
                    "SELECT k.workspace_id, w.name, k.version, k.wrapped FROM workspace_keys k "
                    "JOIN workspaces w ON w.id = k.workspace_id"
                ).fetchall():
                    aad = crypto.dek_aad(name, version)
                    dek = crypto.unwrap_key(old.key, wrapped, aad)
                    self.conn.execute(
                        "UPDATE workspace_keys SET wrapped = ? WHERE workspace_id = ? AND version = ?",
                        (crypto.wrap_key(new_key, dek, aad), ws_id, version),
                    )
                for name, wrapped in self.conn.execute("SELECT name, wrapped FROM wrapped_keys").fetchall():
                    aad = crypto.AUDIT_ROOT_AAD if name == AUDIT_ROOT else name.encode()
                    key = crypto.unwrap_key(old.key, wrapped, aad)
                    self.conn.execute(
                        "UPDATE wrapped_keys SET wrapped = ? WHERE name = ?",
                        (crypto.wrap_key(new_key, key, aad), name),
                    )
                kek_version = int(self._meta("kek_version") or "1") + 1
                new_kcv = crypto.key_check_value(new_key)
                self._set_meta("kek_version", str(kek_version))
                self._set_meta("kcv", new_kcv)
                self._set_meta("kek_rotated_at", store.now_iso())
                failpoints.hit("rotate.rewrapped")
                try:
                    # Commits audit.db, then moves the checkpoint inside this transaction. A crash
                    # between that and our COMMIT leaves a record of a rotation that did not happen:
                    # its kcv is not the vault's (and its key_version may be above the vault's).
                    record({"key_version": kek_version, "kcv": new_kcv})
                except store.Error as exc:
                    raise _audit_unavailable(exc) from None
                failpoints.hit("rotate.audited")
            except BaseException:
                if keep_pending:
                    masterkey.discard_pending(self.home, old)
                raise
        failpoints.hit("rotate.committed")
        # Old wrapped DEKs lived in pages that secure_delete zeroed; checkpoint so the WAL drops them too.
        self.shred()
        try:
            self._master = masterkey.promote_pending(self.home, old, new_key)
        except Exception as exc:  # e.g. the keyring timed out: the pending key still opens the vault
            raise BotctlError(
                f"the rotation was committed, but the new key could not replace the old one in {old.location} "
                f"({type(exc).__name__}); it is kept in {masterkey.pending_location(self.home, old)}.",
                hint="Run any command that opens the vault (e.g. `botctl audit verify`) to finish it.",
                code="rotation_unfinished",
            ) from None
        failpoints.hit("rotate.promoted")
        return self._master, kek_version

    # -- audit key ---------------------------------------------------------------------------------

    def audit_key(self) -> bytes:
        """The chain's MAC key. The audit root never changes (rotation re-wraps it), so it is kept."""
        from botctl import crypto

        if self._audit_key is None:
            row = self.conn.execute(
                "SELECT wrapped FROM wrapped_keys WHERE name = ?", (AUDIT_ROOT,)
            ).fetchone()
            if row is None:
                raise BotctlError(
                    "this vault has no audit key.", hint="Run `botctl init`.", code="not_initialised"
                )
            root = crypto.unwrap_key(self.master.key, row[0], crypto.AUDIT_ROOT_AAD)
            self._audit_key = crypto.hkdf(root, b"botctl/audit/v1")
        return self._audit_key

    # -- status ------------------------------------------------------------------------------------

    def database(self) -> dict[str, Any]:
        """Which backend holds this vault: {"backend", "location", "server_version"}."""
        if store.dialect(self.conn) == "sqlite":
            import sqlite3

            return {
                "backend": "sqlite",
                "location": str(self.home.vault_db),
                "server_version": sqlite3.sqlite_version,
            }
        return {
            "backend": "postgresql",
            "location": store.where(self.home).rsplit(" (", 1)[0],
            "server_version": self.conn.server_version(),
        }

    def status(self) -> dict[str, Any]:
        c = self.conn
        key_versions = {
            name: version
            for name, version in c.execute(
                "SELECT w.name, max(k.version) FROM workspaces w LEFT JOIN workspace_keys k ON k.workspace_id = w.id "
                "GROUP BY w.id ORDER BY w.name"
            )
        }
        return {
            "home": str(self.home.path),
            "database": self.database(),
            "initialized": self._meta("kcv") is not None,
            "schema_version": store.schema_version(c),
            "schema_latest": len(store.VAULT_MIGRATIONS),
            "master_key": {
                "source": self._master.source if self._master else None,
                "location": self._master.location if self._master else None,
                "version": int(self._meta("kek_version") or 0),
                "rotated_at": self._meta("kek_rotated_at"),
            },
            "workspaces": c.execute("SELECT count(*) FROM workspaces").fetchone()[0],
            "secrets": c.execute("SELECT count(*) FROM secrets").fetchone()[0],
            "workspace_key_versions": key_versions,
            "created_at": self._meta("created_at"),
        }


def _audit_unavailable(exc: Exception) -> BotctlError:
    """The rotation's audit record could not be written (fail closed: nothing was rotated)."""
    if "locked" in str(exc) or "busy" in str(exc):
        why = f"audit.db stayed locked by another process for {store.BUSY_TIMEOUT_MS // 1000} s"
    else:
        why = f"audit.db could not be written ({type(exc).__name__}: {exc})"
    return BotctlError(
        f"{why}, so the rotation could not be recorded; nothing was rotated.",
        hint="The current master key still opens the vault. Retry once the other process writing to audit.db "
        "is done; if it persists, run `botctl doctor`.",
        code="audit_unavailable",
    )
