"""authlib's request and response objects over a Starlette request: the form, the query, the vendor's client authentication."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    OAuth2Payload,
)

if TYPE_CHECKING:
    pass


# --- request / response adapters -------------------------------------------------------------------


class SandboxPayload(OAuth2Payload):
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist

    def set_default(self, key: str, value: str) -> None:
        if key not in self._data:
            self._data[key] = value
            self._datalist[key].append(value)


class SandboxOAuth2Request(OAuth2Request):
    """An OAuth2Request built from an already-read Starlette request.

    `payload` is the form body for POST and the query for GET, like the real endpoints (HubSpot:
    "params in the body, never in the query").
    """

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        *,
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        origin: str,
    ) -> None:
        try:
            super().__init__(method, uri, headers=headers)
        except InsecureTransportError:
            # authlib accepts plain http on loopback only; the sandbox is plain HTTP by design
            # wherever it is served (`botctl sandbox serve --host ...`).
            super().__init__(method, "https://sandbox.invalid/", headers=headers)
            self.uri = uri
        self.origin = origin
        self._args = {k: v for k, v in reversed(query)}
        self._form = {k: v for k, v in reversed(form)}
        self.payload = SandboxPayload(form if method == "POST" else query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class OAuthResponse:
    """What `handle_response` returns: status, body and headers, with the `location` attribute
    authlib's RFC 9207 extension rewrites. Turned into a Starlette response by the route."""

    def __init__(self, status: int, body: Any, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"] + [("Location", value)]
