"""The route table: each endpoint declared once, with everything the rest of the API reads
of it: its method and path, its handler, its dialect (which error shape it answers in),
who may call it, whether it needs `anthropic-version`, its rate group, and its line in the
OpenAPI document. Admission (`api/admission.py`), the error shape (`api/context.py`) and
the document (`api/openapi.py`) read this table; nothing keeps a list of paths of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, compile_path

Handler = Callable[[Request], Awaitable[Response]]
Access = Literal["public", "workspace", "admin"]
"""public: no key (the dashboard signs its viewers in itself); workspace: a key, acting in
one workspace; admin: an admin key (the Admin API)."""
Dialect = Literal["anthropic", "openai", "shared"]
"""shared: both SDKs use the path; a request with `anthropic-version` gets the Anthropic
shapes and errors, any other the OpenAI ones."""
RateGroup = Literal["messages", "batch"]


@dataclass(frozen=True, slots=True)
class Doc:
    """An endpoint's operation in the OpenAPI document."""

    summary: str
    response: str | dict[str, Any]
    """A component's name (JSON), or the whole 200 response."""
    body: str | None = None
    params: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    access: Access = "workspace"
    dialect: Dialect = "anthropic"
    version: bool = False
    """`anthropic-version` is required (as on the hosted API)."""
    rate: RateGroup | None = None
    doc: Doc | None = None
    name: str = field(default="")

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method], name=self.name or None)

    def dialect_for(self, headers: Mapping[str, str]) -> str:
        if self.dialect == "shared":
            return "anthropic" if "anthropic-version" in headers else "openai"
        return self.dialect


UNSERVED_ANTHROPIC = ("/v1/skills", "/v1/experimental")
"""Anthropic API paths served by no endpoint: their 404s are in Anthropic's shape."""


class Table:
    """The endpoints, found by method and path (a dict for fixed paths, patterns for the
    few with parameters)."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)
        self._anthropic = (
            tuple(
                {
                    "/".join(e.path.split("/")[:3])
                    for e in endpoints
                    if e.dialect == "anthropic" and e.path.startswith("/v1/")
                }
            )
            + UNSERVED_ANTHROPIC
        )
        self._fixed: dict[str, list[Endpoint]] = {}
        self._patterns: list[tuple[Any, Endpoint]] = []
        for e in self.endpoints:
            if "{" in e.path:
                self._patterns.append((compile_path(e.path)[0], e))
            else:
                self._fixed.setdefault(e.path, []).append(e)

    def find(self, method: str, path: str) -> Endpoint | None:
        """The endpoint for `method` and `path`; for another method at a path served
        (what a 405 is answered as), that path's first endpoint without its rate group;
        None for a path served by none."""
        found = self._fixed.get(path) or [e for p, e in self._patterns if p.match(path)]
        if not found:
            return None
        exact = next((e for e in found if e.method == method), None)
        return exact if exact is not None else dataclasses.replace(found[0], rate=None)

    def dialect(self, endpoint: Endpoint | None, path: str, headers: Mapping[str, str]) -> str:
        """The error shape of a request to `endpoint` (`find`'s answer for it): its
        dialect; for a path none serves, OpenAI's for a `/v1/` path outside the Anthropic
        API from a caller that sent no `anthropic-version` (an OpenAI client asking for
        what is not here, `/v1/embeddings` say), else Anthropic's."""
        if endpoint is not None:
            return endpoint.dialect_for(headers)
        if (
            path.startswith("/v1/")
            and not path.startswith(self._anthropic)
            and "anthropic-version" not in headers
        ):
            return "openai"
        return "anthropic"

    def routes(self) -> list[Route]:
        return [e.route() for e in self.endpoints]


# Parameters the OpenAPI document shares between operations.
ID = {"in": "path", "required": True, "schema": {"type": "string"}}
PAGE = (
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "after_id", "in": "query", "schema": {"type": "string"}},
    {"name": "before_id", "in": "query", "schema": {"type": "string"}},
)
OPENAI_PAGE = (
    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
    {"name": "after", "in": "query", "schema": {"type": "string"}},
)


def path_param(name: str) -> tuple[dict[str, Any]]:
    return ({"name": name, **ID},)
