"""`make demo`: a guided tour of what botctl does today, in a throw-away home.

Runs the real `botctl` in subprocesses, prints each command and what it printed, and leaves your own
home alone. Grows with the product (connectors, daemon, widget) as those land.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

BOTCTL = [sys.executable, "-m", "botctl"]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m" if sys.stdout.isatty() else f"\n== {title}")


def run(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    print(f"$ botctl {shlex.join(args)}")
    proc = subprocess.run([*BOTCTL, *args], env=env, capture_output=True, text=True)
    for stream in (proc.stdout, proc.stderr):
        if stream.strip():
            print("  " + stream.rstrip().replace("\n", "\n  "))
    if proc.returncode not in ok:
        print(f"unexpected exit {proc.returncode}", file=sys.stderr)
        sys.exit(1)
    if proc.returncode:
        print(f"  (exit {proc.returncode})")
    return proc


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="botctl-demo-"))
    env = {**os.environ, "BOTCTL_HOME": str(tmp / "home"), "BOTCTL_NO_KEYRING": "1", "NO_COLOR": "1"}
    env.pop("BOTCTL_MASTER_KEY", None)
    try:
        step("A throw-away home with its master key (file fallback here: no OS keyring in a demo)")
        run("init", env=env)
        step("Two workspaces, each with its own encryption key")
        run("workspace", "create", "acme", "--plan", "pro", "--origin", "https://shop.acme.test",
            "--display-name", "Acme Support", env=env)
        run("workspace", "create", "globex", "--plan", "free", env=env)
        run("workspace", "create", "acme", env=env, ok=(4,))
        run("workspace", "create", "Not_A_Slug", env=env, ok=(2,))
        run("workspace", "list", env=env)
        run("workspace", "set-plan", "globex", "business", env=env)
        run("workspace", "rotate-key", "acme", env=env)
        step("The vault")
        run("vault", "status", env=env)
        run("vault", "rotate-master-key", env=env)
        step("Every change left an audit record, chained with HMAC")
        run("audit", env=env)
        run("audit", "verify", env=env)
        step("Tamper with one record behind botctl's back ...")
        db = sqlite3.connect(tmp / "home" / "audit.db")
        body = db.execute("SELECT body FROM records WHERE seq = 3").fetchone()[0]
        db.execute("UPDATE records SET body = ? WHERE seq = 3", (body.replace('"outcome":"ok"', '"outcome":"denied"'),))
        db.commit()
        print("$ sqlite3 audit.db  # record 3: outcome ok -> denied")
        run("audit", "verify", env=env, ok=(10,))
        db.execute("UPDATE records SET body = ? WHERE seq = 3", (body,))
        db.commit()
        db.close()
        print("(restored)")
        run("audit", "verify", env=env)
        step("Crypto-shredding: deleting a workspace destroys its key")
        run("workspace", "delete", "globex", "--yes", env=env)
        run("audit", "-n", "3", env=env)
        print("\nDemo finished. Next: connectors, the daemon and the widget arrive with the next issues.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
