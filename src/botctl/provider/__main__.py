"""`python -m botctl.provider --home H --socket PATH`: the provider process (started by the supervisor)."""

import argparse
import logging
import os
import sys


def main() -> None:
    from botctld.confine import no_dumps

    no_dumps()  # first: from here on no process of our uid can read our memory, environ or ptrace us
    parser = argparse.ArgumentParser(prog="botctl-provider")
    parser.add_argument("--home", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--refresh-interval", type=float, default=30.0)
    parser.add_argument("--socket-group", type=int, help="a group (the edge's) that may connect: socket 0660")
    parser.add_argument(
        "--master-key-fd", type=int, help="read the master key from this pipe (not the environment)"
    )
    parser.add_argument(
        "--listen-tls",
        metavar="HOST:PORT",
        help="also listen on TCP with mutual TLS for edges on other hosts (botctl.provider.mtls)",
    )
    args = parser.parse_args()
    # One BLAS thread per call (before numpy loads): the provider answers visitors concurrently, and a
    # knowledge question's matrix-vector products are too small for threads to pay (they spin on the
    # other cores instead). An operator's own setting wins.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.umask(0o077)  # the socket uvicorn creates is 0600 from birth (uvicorn would leave it 0666)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s provider %(levelname)s %(message)s"
    )
    if args.master_key_fd is not None:
        from botctl.daemon import read_secret_fd

        # Only this process's own copy of the environment (not /proc/<pid>/environ, which shows what the
        # process was started with), and removed again once the vault is open.
        os.environ["BOTCTL_MASTER_KEY"] = read_secret_fd(args.master_key_fd).decode()
    import uvicorn

    from botctl.errors import BotctlError
    from botctl.provider.app import create_app

    if os.path.exists(args.socket):
        os.unlink(args.socket)  # stale socket from a crashed provider (the supervisor holds the home lock)
    app = create_app(args.home, refresh_interval=args.refresh_interval)
    config = uvicorn.Config(
        app,
        uds=args.socket,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
            await super().startup(sockets=sockets)
            # uvicorn chmods a Unix socket to 0666 after binding; only our user (and, when the edge runs as
            # another user, the group shared with it) may talk to the provider. The socket's folder is
            # 0700 (0750 to that group), so there is no window in which anyone else can connect.
            if args.socket_group is not None:
                os.chown(args.socket, -1, args.socket_group)
                os.chmod(args.socket, 0o660)
            else:
                os.chmod(args.socket, 0o600)

    try:
        if args.listen_tls:
            import asyncio

            from botctl.provider.mtls import serve_both, tls_server

            asyncio.run(serve_both(Server(config), tls_server(app, args.home, args.listen_tls)))
        else:
            Server(config).run()
    except BotctlError as exc:
        sys.stderr.write(f"provider: {exc.message}\n")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
