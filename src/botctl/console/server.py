"""Serve the console on 127.0.0.1 (never another address: it is not for the public edge)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TextIO

from botctl.console.access import Access
from botctl.errors import Conflict
from botctl.home import Home

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise Conflict(
            f"cannot listen on {HOST}:{port}: {exc.strerror or exc}.",
            hint="Choose another --port, or leave it out for a free one.",
            code="port_in_use",
        ) from None
    sock.listen(64)
    return sock


def serve(home: Home, *, port: int = 0, open_browser: bool = True, out: TextIO | None = None) -> None:
    """Bind, print (or open) the one-time link, serve until Ctrl-C."""
    import threading
    import webbrowser

    import uvicorn

    from botctl.console.web import create_app

    out = out or sys.stdout
    sock = bind(port)
    access = Access(sock.getsockname()[1])
    app = create_app(home, access)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    opener = None
    if open_browser:
        out.write(
            f"botctl console: opening {access.url}\n(if no browser opens, open that link; it works once)\n"
        )
        opener = opener_file(home, access)
        access.on_spent = lambda: opener.unlink(missing_ok=True)  # the link is spent: nothing left to hold
        # On a thread: a console browser or a $BROWSER command would otherwise block until it exits.
        threading.Thread(target=webbrowser.open, args=(opener.as_uri(),), daemon=True).start()
    else:
        out.write(f"{access.url}\n")
    out.flush()
    try:
        server.run(sockets=[sock])
    finally:
        app.app.state.console.chain.close()
        sock.close()
        if opener is not None:
            opener.unlink(missing_ok=True)


def opener_file(home: Home, access: Access) -> Path:
    """A page only this user can read that sends the browser on to the one-time link. The browser is given
    this file's path, never the link: a command line is readable by every local user (/proc/PID/cmdline),
    who could spend the token before the browser does and hold the console's session."""
    import os

    home.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home.run_dir / f"console-{access.port}.html"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:  # the link is URL-safe characters only
        f.write(
            f'<!doctype html>\n<meta charset="utf-8">\n<meta http-equiv="refresh" content="0;url={access.url}">\n'
            f'<title>botctl console</title>\n<p><a href="{access.url}">Open the botctl console</a></p>\n'
        )
    return path
