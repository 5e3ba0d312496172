"""`botctl console`: a read-only web console for the operator, on this machine only.

Pages: the audit timeline (the same filters as `botctl audit`, live rows as records are written, the
chain's verdict), one record in full, connections per workspace (with the reconnect command for those
that need it), actions and refusals per day. Server-rendered (Jinja2, autoescaped), scripts and styles
from files (uPlot vendored under static/vendor), strict CSP.

Modules: `access` (one-time token → session cookie, Host/method checks, security headers), `data`
(what the pages show, read through the library), `web` (the Starlette app), `server` (bind loopback,
print or open the link, serve). Imported only by `botctl console` (jinja2, starlette and uvicorn are
never on the CLI's start-up path).
"""
