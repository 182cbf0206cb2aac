"""Models API structs (`GET /v1/models`, `GET /v1/models/{id}`).

Both SDKs call this path, so one shape serves both: the Anthropic fields, plus
the OpenAI ones (`object`, `created`, `owned_by`); each SDK ignores the other's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


class ModelSampling(msgspec.Struct, omit_defaults=True):
    """batchyard's addition to a model's entry: the sampling a request that leaves it
    out gets (the routing table's `sampling`)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None


class ModelInfo(msgspec.Struct):
    id: str
    display_name: str
    created_at: datetime
    lifecycle: Literal["active", "deprecated", "retired"] = "active"
    max_input_tokens: int | None = None
    max_tokens: int | None = None
    type: Literal["model"] = "model"
    object: Literal["model"] = "model"
    created: int = 0
    """Unix seconds (the OpenAI field); the same moment as `created_at`."""
    owned_by: str = "batchyard"
    sampling_defaults: ModelSampling | msgspec.UnsetType = msgspec.UNSET
    """batchyard's addition: see `ModelSampling` (absent: the engine's own defaults)."""


class ModelPage(msgspec.Struct):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"
