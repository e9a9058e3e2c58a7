"""Routing for the local Hub: one ``Ctx`` per request, route tables that modules declare
(``route = RouteTable()``, then ``@route("GET", pattern)``), and ``dispatch`` over the table
the server assembles in one place, in an explicit order (first match wins).

Routing is on the raw path (spec §1): ``refs%2Fpr%2F1`` and ``a%2Fb`` stay single segments
and are unquoted after matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlencode

from hubtool.hub.auth import Identity, identify, request_token
from hubtool.hub.protocol import ApiError, Request, Response
from hubtool.hub.service import REPO_TYPES, URL_PREFIX, HubService, RepoRef

Handler = Callable[["Ctx"], Response]
Route = tuple[str, re.Pattern[str], Handler]
ID = r"(?P<id>[^/]+(?:/[^/]+)?)"
T = r"(?P<t>models|datasets|spaces)"
PAGE = 1000
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")
MAX_CURSOR = 10**9


class Ctx:
    """One request in flight: the request, the service, the matched path parameters."""

    def __init__(self, svc: HubService, req: Request, params: dict[str, str]) -> None:
        self.svc, self.req = svc, req
        self.params = {k: unquote(v) for k, v in params.items() if v is not None}
        self._who: Identity | bool | None = False

    @property
    def who(self) -> Identity | None:
        if self._who is False:
            self._who = identify(self.svc.db, request_token(self.req))
        return self._who  # type: ignore[return-value]

    @property
    def ref(self) -> RepoRef:
        return RepoRef(REPO_TYPES[self.params.get("t", "models")], self.params["id"])

    def next_link(self, cursor: str) -> str:
        """The ``Link`` header of the next page: this URL, absolute, with a new cursor."""
        query = [(k, v) for k, vs in self.req.query.items() if k != "cursor" for v in vs]
        query.append(("cursor", cursor))
        url = f"{self.req.scheme_host}{self.req.raw_path}?{urlencode(query)}"
        return f'<{url}>; rel="next"'

    def repo_url(self, ref: RepoRef) -> str:
        return f"{self.req.scheme_host}/{URL_PREFIX[ref.repo_type]}{ref.repo_id}"


class RouteTable:
    """The routes one module declares, in declaration order."""

    def __init__(self) -> None:
        self.entries: list[Route] = []

    def __call__(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.entries.append((method, re.compile(f"^{pattern}$"), fn))
            return fn

        return register


def dispatch(svc: HubService, req: Request, table: Sequence[Route]) -> Response:
    path = req.raw_path
    allowed: set[str] = set()
    for method, pattern, handler in table:
        m = pattern.match(path)
        if not m:
            continue
        if method != req.method and not (method == "GET" and req.method == "HEAD"):
            allowed.update((method, "HEAD") if method == "GET" else (method,))
            continue
        return handler(Ctx(svc, req, m.groupdict()))
    if allowed or req.method not in METHODS:
        methods = ", ".join(m for m in METHODS if m in allowed) or ", ".join(METHODS)
        err = ApiError(405, f"Method {req.method} not allowed here", headers={"Allow": methods})
        return Response.error(err)
    return Response.error(ApiError(404, "Sorry, we can't find the page you are looking for."))
