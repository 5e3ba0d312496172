"""`python -m botctl.daemon --home H ...`: the supervisor process (started by `botctl daemon start`)."""

from __future__ import annotations

import os
import sys

from botctl import isolation as isolation_mod
from botctl.daemon.control import Options, supervisor_for
from botctl.daemon.supervisor import no_dumps, read_secret_fd, take_master_key_from_env
from botctl.errors import BotctlError
from botctl.home import Home


def main() -> None:
    import argparse

    no_dumps()
    parser = argparse.ArgumentParser(prog="botctl-supervisor")
    parser.add_argument("--home", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ip-rate", type=float, default=20.0)
    parser.add_argument("--visitor-rate", type=float, default=5.0)
    parser.add_argument("--isolation", default="auto", choices=isolation_mod.CHOICES)
    parser.add_argument("--edge-user", default=isolation_mod.DEFAULT_EDGE_USER)
    parser.add_argument("--no-edge", action="store_true")
    parser.add_argument("--socket")
    parser.add_argument("--socket-group")
    parser.add_argument("--master-key-fd", type=int)
    parser.add_argument("--trust-proxy", type=int, default=0)
    parser.add_argument("--trust-proxy-cidr", action="append", default=[])
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--provider-listen")
    args = parser.parse_args()
    os.umask(0o077)
    master_key = take_master_key_from_env()
    if args.master_key_fd is not None:
        master_key = read_secret_fd(args.master_key_fd)
    opts = Options(
        host=args.host,
        port=args.port,
        ip_rate=args.ip_rate,
        visitor_rate=args.visitor_rate,
        isolation=args.isolation,
        edge_user=args.edge_user,
        edge=not args.no_edge,
        socket=args.socket,
        socket_group=args.socket_group,
        trust_proxy=args.trust_proxy,
        trust_proxy_cidrs=tuple(args.trust_proxy_cidr),
        metrics_port=args.metrics_port,
        provider_listen=args.provider_listen,
    )
    try:
        sys.exit(supervisor_for(Home.resolve(args.home), opts, check=False, master_key=master_key).run())
    except BotctlError as exc:
        sys.stderr.write(f"supervisor: {exc.message}\n")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
