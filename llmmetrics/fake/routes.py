"""The route table: each wire API module adds its routes with ``register(routes, workload)``.

A route is a method, a path template (``{name}`` matches one path segment, or the rest of one before a literal
such as ``:rawPredict``), a handler and the *dialect* of the API it belongs to: the headers every answer of
that API carries and its error body shape, which the server uses for answers no handler gives (a crashed
handler).

>>> routes = Routes()
>>> async def handler(exchange): ...
>>> routes.add("GET", "/v1/models/{model}", handler, dialect=None)
>>> routes.match("GET", "/v1/models/gpt-4o")[1]
{'model': 'gpt-4o'}
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from .http import Exchange, Handler, Headers

__all__ = ["Dialect", "Route", "Routes"]


class Dialect(Protocol):
    """A wire API's conventions the server needs outside its handlers."""

    name: str

    def headers(self, exchange: Exchange) -> Headers: ...

    def error_body(self, exchange: Exchange, status: int, message: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    dialect: Dialect


_PARAM = re.compile(r"\{(\w+)\}")


class Routes:
    """Routes by method and path; exact paths are a dict lookup, templated ones a regular expression each."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Route] = {}
        self._templated: list[tuple[re.Pattern[str], Route]] = []

    def add(self, method: str, template: str, handler: Handler, *, dialect: Dialect) -> None:
        route = Route(method, template, handler, dialect)
        if "{" not in template:
            self._exact[(method, template)] = route
            return
        pattern = "".join(f"(?P<{part}>[^/]+?)" if index % 2 else re.escape(part)
                          for index, part in enumerate(_PARAM.split(template)))
        self._templated.append((re.compile(pattern + "$"), route))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        route = self._exact.get((method, path))
        if route is not None:
            return route, {}
        for pattern, candidate in self._templated:
            if candidate.method == method and (found := pattern.match(path)):
                return candidate, {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
        return None
