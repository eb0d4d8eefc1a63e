"""Query parameters: a route that takes a query takes only the parameters it documents.

A misspelt filter (``?stauts=failed``) or one this version does not know (``?task=`` before it
existed) used to be ignored silently, so a client got every job and believed it had a filtered
list. Now, like an unknown key in a body, it is a 400 naming the parameter. The parameters each
route takes are read from the OpenAPI document (:func:`scheduler.api.openapi.document`), so the
check and the description cannot disagree. A parameter given twice is refused too (which one
would count?). Routes that take no query (the status card, the dashboard, static files,
``/healthz``, ``/metrics``) ignore one, as they always did: cache-busting suffixes that proxies
and widgets add must not break them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from aiohttp import web
from multidict import MultiMapping

from scheduler.api.errors import Handler
from scheduler.api.openapi import document
from scheduler.errors import InvalidInput

#: A parameter name is quoted in the answer up to this many characters.
_SHOWN: Final = 64


@lru_cache(maxsize=1)
def accepted() -> dict[tuple[str, str], frozenset[str]]:
    """``(path template, METHOD) -> query parameter names`` for the routes that take any."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in document()["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            params = [*shared, *operation.get("parameters", [])]
            names = frozenset(p["name"] for p in params if p["in"] == "query")
            if names:
                out[(path, method.upper())] = names
    return out


def check_query(query: MultiMapping[str], names: frozenset[str]) -> None:
    """Raise :class:`InvalidInput` for the first parameter not in ``names`` or given twice."""
    for name in query:
        shown = name if len(name) <= _SHOWN else name[:_SHOWN] + "..."
        if name not in names:
            takes = ", ".join(sorted(names))
            raise InvalidInput(
                f"{shown}: unknown query parameter; this route takes {takes}", field=shown
            )
        if len(query.getall(name)) > 1:
            raise InvalidInput(f"{shown}: expected once, given more than once", field=shown)


@web.middleware
async def query_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.query_string:
        resource = request.match_info.route.resource
        if resource is not None:
            method = "GET" if request.method == "HEAD" else request.method
            names = accepted().get((resource.canonical, method))
            if names is not None:
                check_query(request.query, names)
    return await handler(request)
