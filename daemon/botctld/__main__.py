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
    parser.add_argument("--ip-rate", type=float, default=20.0, help="requests/s per client IP (0: no limit)")
    parser.add_argument("--visitor-rate", type=float, default=5.0, help="action requests/s per visitor (0: no limit)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s edge %(levelname)s %(message)s")
    from botctld.app import serve

    serve(args.socket, args.host, args.port, trust_proxy=args.trust_proxy, ip_rate=args.ip_rate,
          ip_burst=max(1, int(args.ip_rate * 3)), visitor_rate=args.visitor_rate,
          visitor_burst=max(1, int(args.visitor_rate * 4)))


if __name__ == "__main__":
    main()
