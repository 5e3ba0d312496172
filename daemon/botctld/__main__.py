"""`python -m botctld --socket PATH --host H --port P`: the edge process (started by the supervisor)."""

import argparse
import logging
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="botctld")
    parser.add_argument("--socket", required=True, help="the provider's Unix socket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--trust-proxy", action="store_true", help="take the client IP from X-Forwarded-For")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s edge %(levelname)s %(message)s")
    from botctld.app import serve

    serve(args.socket, args.host, args.port, trust_proxy=args.trust_proxy)


if __name__ == "__main__":
    main()
