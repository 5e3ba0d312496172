"""The edge's HTTP protocol subclasses uvicorn's private HttpToolsProtocol (botctld/protocol.py): uvicorn
is pinned to the versions the hostile suite passes on, and this test fails if the private surface the
subclass relies on changes (an upgrade must then re-run tests/test_hostile.py before moving the pin)."""

from __future__ import annotations

import inspect

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from botctld.protocol import EdgeProtocol

CALLBACKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
)


def test_the_pinned_uvicorn_is_the_one_installed():
    major, minor = (int(x) for x in uvicorn.__version__.split(".")[:2])
    assert (major, minor) == (0, 55), (
        f"uvicorn {uvicorn.__version__}: re-run the hostile suite, then move the pin"
    )


def test_the_private_surface_the_edge_protocol_uses_is_there():
    for name in CALLBACKS:
        base, ours = getattr(HttpToolsProtocol, name, None), getattr(EdgeProtocol, name)
        assert base is not None, f"uvicorn's HttpToolsProtocol lost {name}"
        assert list(inspect.signature(base).parameters) == list(inspect.signature(ours).parameters), name
    init = inspect.signature(HttpToolsProtocol.__init__).parameters
    assert list(init)[:4] == ["self", "config", "server_state", "app_state"], list(init)
    source = inspect.getsource(HttpToolsProtocol)
    for attribute in ("self.loop", "self.transport", "self.server_state", "self.url"):
        assert attribute in source, f"uvicorn's HttpToolsProtocol no longer sets {attribute}"
