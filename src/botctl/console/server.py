"""Serve the console on 127.0.0.1 (never another address: it is not for the public edge)."""

from __future__ import annotations

import socket
import sys
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
        raise Conflict(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}.",
                       hint="Choose another --port, or leave it out for a free one.", code="port_in_use") from None
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
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, date_header=False,
                            lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    if open_browser:
        out.write(f"botctl console: opening {access.url}\n(if no browser opens, open that link; "
                  "it works once)\n")
        # On a thread: a console browser or a $BROWSER command would otherwise block until it exits.
        threading.Thread(target=webbrowser.open, args=(access.url,), daemon=True).start()
    else:
        out.write(f"{access.url}\n")
    out.flush()
    try:
        server.run(sockets=[sock])
    finally:
        app.app.state.console.chain.close()
        sock.close()
