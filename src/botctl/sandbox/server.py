"""Run the sandbox in the foreground (what `botctl sandbox serve` calls)."""

from __future__ import annotations

from collections.abc import Iterable
from types import FrameType
from typing import Any

import uvicorn  # noqa: TID253

from .app import create_app
from .state import SandboxState


class SandboxServer(uvicorn.Server):
    """uvicorn's server, plus: a shutdown also ends requests held by a "hang" fault."""

    def __init__(self, config: uvicorn.Config, state: SandboxState) -> None:
        super().__init__(config)
        self.sandbox_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.sandbox_state.release_hangs()

    def stop(self) -> None:
        """Ask the server to stop (from any thread)."""
        self.sandbox_state.release_hangs()
        self.should_exit = True


def make_server(
    host: str = "127.0.0.1",
    port: int = 8790,
    *,
    token_ttl: int | None = None,
    auto_approve: bool = False,
    device_flow: Iterable[str] | None = None,
    log_level: str = "warning",
    access_log: bool = False,
    **uvicorn_options: Any,
) -> SandboxServer:
    """`token_ttl`, `auto_approve`, `device_flow`: see `create_app`; the rest goes to uvicorn."""
    app = create_app(token_ttl=token_ttl, auto_approve=auto_approve, device_flow=device_flow)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        # A request held by a "hang" fault must not hold up Ctrl-C for long.
        timeout_graceful_shutdown=3,
        **uvicorn_options,
    )
    return SandboxServer(config, app.state.sandbox)


def serve(host: str = "127.0.0.1", port: int = 8790, **opts: Any) -> None:
    """Serve until Ctrl-C/SIGTERM. uvicorn re-raises the signal after a clean shutdown, so SIGINT
    surfaces as KeyboardInterrupt to the caller (the CLI maps it to exit status 130)."""
    make_server(
        host, port, log_level=opts.pop("log_level", "info"), access_log=opts.pop("access_log", True), **opts
    ).run()
