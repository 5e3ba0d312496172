"""`botctld --socket PATH --host H --port P`: the edge process (started by the supervisor or its own unit).

`botctld --provider https://HOST:PORT --cert C --key K --ca CA`: the edge on its own host, reaching the
provider over TCP with mutual TLS (botctld.remote); it holds no database URL and no master key.

Start-up order is the security boundary: parse the arguments, build the app and bind the listening
socket, then confine the process (botctld.confine), and only then accept a connection. With
`--sandbox landlock` (what the supervisor asks for wherever the kernel has Landlock) an edge that
cannot confine itself exits instead of serving.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

EXIT_CONFINEMENT = 78  # EX_CONFIG: asked to confine itself and could not


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="botctld")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--socket", help="the provider's Unix socket")
    target.add_argument(
        "--provider",
        metavar="https://HOST:PORT",
        help="a provider on another host (its --provider-listen), over mutual TLS",
    )
    p.add_argument("--cert", help="with --provider: this edge's certificate (botctl cluster cert issue NAME)")
    p.add_argument("--key", help="with --provider: this edge's private key")
    p.add_argument("--ca", help="with --provider: the cluster CA certificate the provider's must chain to")
    p.add_argument(
        "--provider-name", default="provider", help="the name the provider's certificate must carry"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--trust-proxy",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="N",
        help="N proxies stand in front of the edge: the client is the Nth X-Forwarded-For entry "
        "from the right (bare flag: 1)",
    )
    p.add_argument(
        "--trust-proxy-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="proxies in this network are trusted: the client is the rightmost X-Forwarded-For "
        "entry outside the trusted networks (repeatable)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics on this port of --metrics-host only (default: /metrics is not served)",
    )
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--ip-rate", type=float, default=20.0, help="requests/s per client IP (0: no limit)")
    p.add_argument(
        "--visitor-rate", type=float, default=5.0, help="action requests/s per visitor (0: no limit)"
    )
    p.add_argument(
        "--sandbox",
        choices=("auto", "landlock", "none"),
        default="auto",
        help="confine the process with Landlock before serving: auto = where the kernel has it, "
        "landlock = or exit, none = never",
    )
    p.add_argument(
        "--deny",
        action="append",
        default=[],
        metavar="PATH",
        help="a path the edge must never be able to read (the botctl home, a key's folder): "
        "an import root that contains it or lies inside it is left out of the sandbox",
    )
    return p


def prepare(argv: list[str] | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """Everything up to serving: (server, listening socket, what confinement was applied)."""
    from botctld.confine import ConfinementError, confine, no_dumps

    args = parser().parse_args(argv)
    no_dumps()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s edge %(levelname)s %(message)s"
    )
    from botctld.app import build_server

    target, remote, connect_ports = args.socket, {}, ()
    if args.provider:
        from botctld.remote import RemoteProviderError, client_context, resolve
        from botctld.remote import target as remote_target

        try:
            if not (args.cert and args.key and args.ca):
                raise RemoteProviderError(
                    "--provider needs --cert, --key and --ca (the edge's certificate and key, the cluster CA)"
                )
            address, port = resolve(args.provider)
            remote = {
                "provider_ssl": client_context(args.cert, args.key, args.ca),
                "provider_name": args.provider_name,
            }
        except RemoteProviderError as exc:
            logging.getLogger("botctld").error("%s", exc)
            sys.exit(2)
        target, connect_ports = remote_target(address, port), (port,)
    try:
        server, sockets = build_server(
            target,
            args.host,
            args.port,
            trust_proxy=args.trust_proxy,
            trust_proxy_cidrs=tuple(args.trust_proxy_cidr),
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            ip_rate=args.ip_rate,
            ip_burst=max(1, int(args.ip_rate * 3)),
            visitor_rate=args.visitor_rate,
            visitor_burst=max(1, int(args.visitor_rate * 4)),
            **remote,
        )
    except ValueError as exc:  # a bad --trust-proxy-cidr / --trust-proxy
        logging.getLogger("botctld").error("%s", exc)
        sys.exit(2)
    os.chdir("/")
    info: dict[str, Any] = {"sandbox": "none", "uid": os.getuid()}
    if args.sandbox != "none":
        try:
            info.update(
                confine(deny=args.deny, required=args.sandbox == "landlock", connect_ports=connect_ports)
            )
        except (ConfinementError, OSError) as exc:
            logging.getLogger("botctld").error("cannot confine the edge: %s; not serving", exc)
            sys.exit(EXIT_CONFINEMENT)
        info["sandbox"] = "landlock" if info.get("landlock") else "none"
    logging.getLogger("botctld").info("confinement %s", json.dumps(info, sort_keys=True))
    return server, sockets, info


def main() -> None:
    server, sockets, _ = prepare()
    server.run(sockets=sockets)


if __name__ == "__main__":
    main()
