"""Models API structs (`GET /v1/models`, `GET /v1/models/{id}`)."""

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


class ModelPage(msgspec.Struct):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None
