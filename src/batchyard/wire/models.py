"""Models API structs (`GET /v1/models`, `GET /v1/models/{id}`).

Both SDKs call this path, so one shape serves both: the Anthropic fields, plus
the OpenAI ones (`object`, `created`, `owned_by`); each SDK ignores the other's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


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


class ModelPage(msgspec.Struct):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None
    object: Literal["list"] = "list"
