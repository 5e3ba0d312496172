#!/usr/bin/env python3
"""An example site embedding the botctl widget: its own origin, a fake sign-in, server-side identity tokens.

    python examples/site/server.py --edge http://127.0.0.1:8765 --workspace acme --secret-file site-secret.json

Standard library only. What a real site does is in three places:

* `mint_token`: the signed identity token for the signed-in visitor (HS256 with the workspace's secret
  from `botctl identity rotate`; `kid`; claims sub/email/name/aud/iat/exp, at most 10 minutes),
  minted on the server and only ever handed to the page by `GET /botctl-token`;
* `csp`: a strict Content-Security-Policy that lets only the daemon's edge in;
* `templates/index.html`: the one script tag.

The sign-in is fake on purpose (no password: "Sign in as Ada / Grace"); sessions live in memory.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import stat
import sys
import threading
import time
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
MAX_TTL = 600  # the daemon refuses identity tokens living longer than the workspace allows (10 min default)

# The site's own users. A real site has a database and passwords; the daemon only ever sees the token.
USERS = {
    "ada": {"sub": "u-ada", "email": "ada@example.com", "name": "Ada Lovelace"},
    "grace": {"sub": "u-grace", "email": "grace@example.com", "name": "Grace Hopper"},
}
STATIC = {
    "/static/site.css": ("site.css", "text/css; charset=utf-8"),
    "/static/site.js": ("site.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(
    user: dict[str, str], *, secret: str, kid: str | None, workspace: str, ttl: int, use: str | None = None
) -> str:
    """An HS256 JWT, as PyJWT's `jwt.encode(claims, secret, "HS256", headers={"kid": kid})` would make it.

    Without `use`: the widget's token (the only one that answers a confirmation). A site with an MCP bot signs
    the bot its own, `use="mcp"` (claim `botctl_use`), and never hands the bot the widget's: the daemon's MCP
    endpoint takes only the bot's, and everything else refuses it, so the bot cannot confirm its own ask."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    claims = {
        "sub": user["sub"],
        "email": user["email"],
        "name": user["name"],
        "aud": workspace,
        "iat": now,
        "exp": now + min(ttl, MAX_TTL),
        **({"botctl_use": use} if use else {}),
    }
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def load_secret(path: str | None, kid: str | None) -> tuple[str, str | None]:
    """(secret, kid) from a 0600 file (the JSON of `botctl identity rotate --json`, or the bare secret) or
    from the environment (BOTCTL_SECRET, BOTCTL_KID)."""
    if path:
        p = Path(path)
        try:
            mode = p.stat().st_mode
            text = p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SystemExit(f"error: cannot read the secret file {path}: {exc.strerror}") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SystemExit(f"error: {path} can be read by other users; run `chmod 600 {path}`.")
        if text.startswith("{"):
            data = json.loads(text)
            return str(data["secret"]), kid or data.get("kid")
        return text, kid or os.environ.get("BOTCTL_KID")
    secret = os.environ.get("BOTCTL_SECRET")
    if not secret:
        raise SystemExit("error: give --secret-file PATH (mode 0600) or set BOTCTL_SECRET (and BOTCTL_KID).")
    return secret, kid or os.environ.get("BOTCTL_KID")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise SystemExit(
            f"error: --edge must be the daemon's origin, like http://127.0.0.1:8765 (got {url!r})."
        )
    return f"{parts.scheme}://{parts.netloc}"


def csp(edge: str) -> str:
    """Only this site and the daemon's edge; no inline script or style, no eval, Trusted Types enforced."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {edge}",
            f"connect-src 'self' {edge}",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


class Site:
    def __init__(self, *, edge: str, workspace: str, secret: str, kid: str | None, ttl: int) -> None:
        self.edge, self.workspace, self.secret, self.kid, self.ttl = edge, workspace, secret, kid, ttl
        self.sessions: dict[str, str] = {}  # session id -> user key
        self.lock = threading.Lock()
        self.template = (HERE / "templates" / "index.html").read_text(encoding="utf-8")

    def page(self, user: str | None, mode: str, locale: str | None = None) -> bytes:
        u = USERS.get(user or "")
        values = {
            "edge": self.edge,
            "workspace": self.workspace,
            "who": f"Signed in as {u['name']} ({u['email']})" if u else "You are not signed in.",
            "signed_in": "true" if u else "false",
            "mode": mode,
            # push mode: the page hands the token over itself (botctl.identify); default: the widget asks /botctl-token
            "endpoint_attr": "" if mode == "push" else ' data-identity-endpoint="/botctl-token"',
            # ?lang=fr: the widget in French (data-locale); only the languages it ships
            "locale_attr": f' data-locale="{locale}"' if locale in ("en", "fr") else "",
        }
        out = self.template
        for key, value in values.items():
            out = out.replace(
                "{{" + key + "}}", value if key.endswith("_attr") else html.escape(value, quote=True)
            )
        return out.encode("utf-8")


def make_handler(site: Site, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "example-site/1"

        def version_string(self) -> str:
            return self.server_version

        def log_message(self, fmt: str, *args) -> None:  # noqa: ANN002
            if not quiet:
                super().log_message(fmt, *args)

        # -- helpers ---------------------------------------------------------------------------

        def session_user(self) -> str | None:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
            sid = cookie["sid"].value if "sid" in cookie else None
            with site.lock:
                return site.sessions.get(sid) if sid else None

        def send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", csp(site.edge))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "strict-origin-when-cross-origin")
            self.send_header("X-Frame-Options", "DENY")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def send_json(self, status: int, obj: object) -> None:
            self.send(status, json.dumps(obj).encode(), "application/json", {"Cache-Control": "no-store"})

        def redirect(self, to: str, cookie: str | None = None) -> None:
            headers = {"Location": to, "Cache-Control": "no-store"}
            if cookie:
                headers["Set-Cookie"] = cookie
            self.send(HTTPStatus.SEE_OTHER, b"", "text/plain", headers)

        def same_origin_post(self) -> bool:
            """Cross-site form posts are refused (SameSite=Lax already keeps the cookie off them)."""
            origin = self.headers.get("Origin")
            return origin is None or origin == f"http://{self.headers.get('Host')}"

        # -- routes ----------------------------------------------------------------------------

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/":
                query = parse_qs(url.query)
                mode = "push" if query.get("mode") == ["push"] else "endpoint"
                self.send(
                    200,
                    site.page(self.session_user(), mode, (query.get("lang") or [None])[0]),
                    "text/html; charset=utf-8",
                    {"Cache-Control": "no-store"},
                )
            elif url.path == "/botctl-token":
                self.token()
            elif url.path in STATIC:
                name, ctype = STATIC[url.path]
                self.send(200, (HERE / "static" / name).read_bytes(), ctype, {"Cache-Control": "no-cache"})
            elif url.path == "/healthz":
                self.send_json(200, {"ok": True})
            else:
                self.send(404, b"not found\n", "text/plain; charset=utf-8")

        def token(self) -> None:
            """The signed-in visitor's identity token, for the widget on this site's own pages only."""
            fetch_site = self.headers.get("Sec-Fetch-Site")
            if fetch_site is not None and fetch_site != "same-origin":
                self.send_json(403, {"error": "same-origin requests only"})
                return
            user = self.session_user()
            if user is None:
                self.send_json(200, {"token": None})  # anonymous: the widget offers what needs no sign-in
                return
            tok = mint_token(
                USERS[user], secret=site.secret, kid=site.kid, workspace=site.workspace, ttl=site.ttl
            )
            self.send_json(200, {"token": tok})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if not self.same_origin_post():
                self.send(403, b"cross-site request refused\n", "text/plain; charset=utf-8")
                return
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            back = "/?mode=push" if form.get("mode") == ["push"] else "/"
            if url.path == "/login":
                user = (form.get("user") or [""])[0]
                if user not in USERS:
                    self.send(400, b"unknown user\n", "text/plain; charset=utf-8")
                    return
                sid = secrets.token_urlsafe(32)
                with site.lock:
                    site.sessions[sid] = user
                self.redirect(back, f"sid={sid}; Path=/; HttpOnly; SameSite=Lax")
            elif url.path == "/logout":
                cookie = SimpleCookie(self.headers.get("Cookie") or "")
                if "sid" in cookie:
                    with site.lock:
                        site.sessions.pop(cookie["sid"].value, None)
                self.redirect(back, "sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
            else:
                self.send(404, b"not found\n", "text/plain; charset=utf-8")

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Example site embedding the botctl widget.")
    ap.add_argument("--edge", required=True, help="the daemon's edge origin, e.g. http://127.0.0.1:8765")
    ap.add_argument("--workspace", required=True, help="the botctl workspace (also the tokens' aud)")
    ap.add_argument(
        "--secret-file",
        help="0600 file: `botctl identity rotate -w WS --json` output, or the bare "
        "secret (else env BOTCTL_SECRET / BOTCTL_KID)",
    )
    ap.add_argument("--kid", help="key id for the token header (default: from the secret file or BOTCTL_KID)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--ttl", type=int, default=300, help=f"token lifetime in seconds (at most {MAX_TTL})")
    ap.add_argument("--quiet", action="store_true", help="no access log")
    args = ap.parse_args(argv)
    if not 10 <= args.ttl <= MAX_TTL:
        ap.error(f"--ttl must be between 10 and {MAX_TTL} seconds")
    secret, kid = load_secret(args.secret_file, args.kid)
    site = Site(edge=origin_of(args.edge), workspace=args.workspace, secret=secret, kid=kid, ttl=args.ttl)
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(site, args.quiet))
    httpd.daemon_threads = True
    host, port = httpd.server_address[:2]
    print(
        f"example site on http://{host}:{port} (widget from {site.edge}, workspace {site.workspace}); "
        f"allow this origin: botctl workspace set-origins {site.workspace} http://{host}:{port}",
        flush=True,
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    sys.exit(main())
