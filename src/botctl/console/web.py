"""The console's Starlette app: server-rendered pages (Jinja2, autoescaped) and the small JSON API the
pages' scripts poll. Every route sits behind `access.Guard`; every handler only reads (`data`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette  # noqa: TID253 - imported only by `botctl console`
from starlette.requests import Request  # noqa: TID253
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response  # noqa: TID253
from starlette.routing import Mount, Route  # noqa: TID253
from starlette.staticfiles import StaticFiles  # noqa: TID253

from botctl.console import data
from botctl.console.access import LOGIN_PATH, Access, Guard
from botctl.errors import NotFound
from botctl.home import Home

HERE = Path(__file__).resolve().parent
ACTIVITY_DAYS = (7, 14, 30, 90)


def _templates():  # -> jinja2.Environment
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(filter_fields=data.FILTER_FIELDS, outcomes=data.audit.OUTCOMES)
    return env


class Console:
    """One console: the home it reads, the access it checks, the templates, the chain's cached verdict."""

    def __init__(self, home: Home, access: Access) -> None:
        self.home = home
        self.access = access
        self.env = _templates()
        self.chain = data.ChainStatus(home)

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(home=str(self.home.path), **context)
        return HTMLResponse(html, status_code=status)


def _console(request: Request) -> Console:
    return request.app.state.console


def login(request: Request) -> Response:
    console = _console(request)
    if request.method != "GET":  # a HEAD (a link preview, a checker) must not spend the one-time token
        return Response(status_code=405, headers={"allow": "GET"})
    session = console.access.exchange(str(request.query_params.get("token", "")))
    if session is None:
        return console.page(
            "message.html",
            401,
            title="Link not valid",
            page="",
            message="This link was already used or is not this console's. Run `botctl console` "
            "again for a new one.",
        )
    response = RedirectResponse("/", status_code=303)
    response.raw_headers.append((b"set-cookie", console.access.set_cookie()))
    return response


def timeline(request: Request) -> Response:
    console = _console(request)
    q = data.parse_query(request.query_params)
    rows, head = data.timeline(console.home, q)
    return console.page(
        "timeline.html",
        400 if q.error else 200,
        title="Audit timeline",
        page="timeline",
        q=q,
        rows=rows,
        head=head,
    )


def record(request: Request) -> Response:
    console = _console(request)
    try:
        seq = request.path_params["seq"]
        if seq > 2**63 - 1:  # past SQLite's integers: no such record
            raise NotFound(f"no audit record with seq {seq}.")
        rec = data.record(console.home, seq)
    except NotFound as exc:
        return console.page("message.html", 404, title="No such record", page="timeline", message=exc.message)
    return console.page("record.html", title=f"Record {rec['seq']}", page="timeline", rec=rec)


def verify(request: Request) -> Response:
    console = _console(request)
    return console.page("verify.html", title="Chain", page="verify", chain=console.chain.get())


def connections(request: Request) -> Response:
    console = _console(request)
    return console.page(
        "connections.html",
        title="Connections",
        page="connections",
        workspaces=data.connections_by_workspace(console.home),
    )


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "30")
    return int(raw) if raw in {str(d) for d in ACTIVITY_DAYS} else 30


def activity(request: Request) -> Response:
    console = _console(request)
    days = _days(request)
    return console.page(
        "activity.html",
        title="Activity",
        page="activity",
        days=days,
        choices=ACTIVITY_DAYS,
        activity=data.activity(console.home, days),
    )


def api_records(request: Request) -> Response:
    raw = request.query_params.get("after", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:  # str.isdigit() takes "²", which int() refuses
        return JSONResponse({"problem": "after must be a record number"}, status_code=400)
    q = data.parse_query(request.query_params)
    if q.error is not None:
        return JSONResponse({"problem": q.error}, status_code=400)
    rows, nxt = data.newer(_console(request).home, q, int(raw))
    return JSONResponse({"rows": rows, "next": nxt})


def api_verify(request: Request) -> Response:
    return JSONResponse(_console(request).chain.get())


def api_activity(request: Request) -> Response:
    return JSONResponse(data.activity(_console(request).home, _days(request)))


def not_found(request: Request, exc: Exception) -> Response:
    return _console(request).page("message.html", 404, title="Not found", page="", message="No such page.")


def create_app(home: Home, access: Access) -> Any:
    """The ASGI app (`Guard` around the Starlette app) for `home`, admitting whoever `access` admits."""
    routes = [
        Route(LOGIN_PATH, login),
        Route("/", timeline),
        Route("/records/{seq:int}", record),
        Route("/verify", verify),
        Route("/connections", connections),
        Route("/activity", activity),
        Route("/api/records", api_records),
        Route("/api/verify", api_verify),
        Route("/api/activity", api_activity),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.console = Console(home, access)
    return Guard(app, access)
