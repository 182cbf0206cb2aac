"""The routing table: model names (exact or glob patterns) to engines."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from batchyard.engines.base import Engine


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str
    engine: Engine


class UnknownModel(LookupError):
    pass


class EngineRouter:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def engine_for(self, model: str) -> Engine:
        for route in self.routes:
            if route.pattern == model or fnmatch.fnmatchcase(model, route.pattern):
                return route.engine
        raise UnknownModel(model)

    @property
    def engines(self) -> list[Engine]:
        seen: dict[int, Engine] = {}
        for route in self.routes:
            seen.setdefault(id(route.engine), route.engine)
        return list(seen.values())

    async def aclose(self) -> None:
        for engine in self.engines:
            await engine.aclose()
