"""`python -m botctl.provider --home H --socket PATH`: the provider process (started by the supervisor)."""

import argparse
import logging
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="botctl-provider")
    parser.add_argument("--home", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--refresh-interval", type=float, default=30.0)
    args = parser.parse_args()
    os.umask(0o077)  # the socket uvicorn creates is 0600 from birth (uvicorn would leave it 0666)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s provider %(levelname)s %(message)s")
    import uvicorn

    from botctl.errors import BotctlError
    from botctl.provider.app import create_app

    if os.path.exists(args.socket):
        os.unlink(args.socket)  # stale socket from a crashed provider (the supervisor holds the home lock)
    app = create_app(args.home, refresh_interval=args.refresh_interval)
    config = uvicorn.Config(app, uds=args.socket, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=10)
    class Server(uvicorn.Server):
        async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
            await super().startup(sockets=sockets)
            # uvicorn chmods a Unix socket to 0666 after binding; only our user may talk to the provider.
            # (The run/ directory is 0700 too, so there is no window in which another user can connect.)
            os.chmod(args.socket, 0o600)

    try:
        Server(config).run()
    except BotctlError as exc:
        sys.stderr.write(f"provider: {exc.message}\n")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
