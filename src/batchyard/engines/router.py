"""The routing table: model names (exact, alias or glob) to engines, and the models list."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

import msgspec

from batchyard.engines.base import Engine
from batchyard.engines.config import ModelConfig, SamplingDefaults
from batchyard.wire.models import ModelInfo, ModelSampling


@dataclass(frozen=True, slots=True)
class Route:
    model: ModelConfig
    engine: Engine

    @property
    def is_pattern(self) -> bool:
        return any(c in self.model.id for c in "*?[")


@dataclass(frozen=True, slots=True)
class Resolved:
    engine: Engine
    model: str
    """The name clients see in answers (the configured id, or what they sent to a glob)."""
    upstream: str
    """The name the engine is asked for."""
    sampling: SamplingDefaults | None = None
    """What a request that leaves sampling out gets."""


def _sampling_info(sampling: SamplingDefaults | None) -> ModelSampling | msgspec.UnsetType:
    if sampling is None:
        return msgspec.UNSET
    return ModelSampling(sampling.temperature, sampling.top_p, sampling.top_k)


class UnknownModel(LookupError):
    pass


_RESOLVED_NAMES = 4096


class EngineRouter:
    def __init__(self, routes: list[Route], created_at: datetime | None = None) -> None:
        self.routes = routes
        self.created_at = created_at or datetime(2026, 1, 1)
        self._exact: dict[str, Route] = {}
        self._patterns = [route for route in routes if route.is_pattern]
        for route in routes:
            if not route.is_pattern:
                for name in (route.model.id, *route.model.aliases):
                    self._exact.setdefault(name, route)
        self._resolved: dict[str, Resolved] = {}
        """Names already resolved (every request resolves its model: keep it a lookup)."""

    def _route(self, model: str) -> tuple[Route, bool]:
        """The route `model` takes, and whether a glob matched it."""
        route = self._exact.get(model)
        if route is not None:
            return route, False
        for route in self._patterns:
            if fnmatch.fnmatchcase(model, route.model.id):
                return route, True
        raise UnknownModel(model)

    def resolve(self, model: str) -> Resolved:
        found = self._resolved.get(model)
        if found is not None:
            return found
        route, by_pattern = self._route(model)
        name = model if by_pattern else route.model.id
        found = Resolved(route.engine, name, route.model.upstream or name, route.model.sampling)
        if len(self._resolved) >= _RESOLVED_NAMES:  # glob routes take any name a client sends
            self._resolved.clear()
        self._resolved[model] = found
        return found

    def config_of(self, model: str) -> ModelConfig | None:
        """The configuration of the route `model` takes (None: it routes nowhere now)."""
        try:
            return self._route(model)[0].model
        except UnknownModel:
            return None

    def engine_for(self, model: str) -> Engine:
        return self.resolve(model).engine

    def models(self) -> list[ModelInfo]:
        """The listable models: every exact id (globs have no single name)."""
        return [
            ModelInfo(
                id=r.model.id,
                display_name=r.model.display_name or r.model.id,
                created_at=self.created_at,
                created=int(self.created_at.timestamp()),
                max_input_tokens=r.model.max_input_tokens,
                max_tokens=r.model.max_tokens,
                sampling_defaults=_sampling_info(r.model.sampling),
            )
            for r in self.routes
            if not r.is_pattern
        ]

    def model(self, model: str) -> ModelInfo:
        resolved = self.resolve(model)
        for info in self.models():
            if info.id == resolved.model:
                return info
        return ModelInfo(
            id=resolved.model,
            display_name=resolved.model,
            created_at=self.created_at,
            created=int(self.created_at.timestamp()),
        )

    @property
    def engines(self) -> list[Engine]:
        seen: dict[int, Engine] = {}
        for route in self.routes:
            seen.setdefault(id(route.engine), route.engine)
        return list(seen.values())

    async def aclose(self) -> None:
        for engine in self.engines:
            await engine.aclose()
