"""`cache_control` breakpoints: where a request has them, and the hosted API's checks of them."""

from __future__ import annotations

from typing import Literal, NamedTuple

from batchyard.wire.errors import InvalidParams
from batchyard.wire.messages import CountTokensParams, MessageCreateParams

CACHE_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
"""The `ttl`s a `cache_control` breakpoint may ask for (the hosted API's), in seconds."""
MAX_CACHE_BREAKPOINTS = 4


class CacheMark(NamedTuple):
    """A `cache_control` breakpoint and where it is: `system` (block `block`), `messages`
    (message `message`, block `block`), `tools` (tool `block`) or the top level."""

    where: str
    mark: object
    part: Literal["top", "system", "messages", "tools"]
    message: int = -1
    block: int = -1


def cache_marks(params: MessageCreateParams | CountTokensParams) -> list[CacheMark]:
    """Every `cache_control` of a request, in prompt order (the top-level one first)."""
    marks: list[CacheMark] = []
    if params.cache_control is not None:
        marks.append(CacheMark("cache_control", params.cache_control, "top"))
    if isinstance(params.system, list):
        marks += [
            CacheMark(f"system.{j}.cache_control", b.cache_control, "system", block=j)
            for j, b in enumerate(params.system)
            if b.cache_control is not None
        ]
    for i, message in enumerate(params.messages):
        if not isinstance(message.content, str):
            for j, block in enumerate(message.content):
                mark = getattr(block, "cache_control", None)
                if mark is not None:
                    where = f"messages.{i}.content.{j}.cache_control"
                    marks.append(CacheMark(where, mark, "messages", i, j))
    for k, tool in enumerate(params.tools or []):
        if isinstance(tool, dict) and tool.get("cache_control") is not None:
            where = f"tools.{k}.cache_control"
            marks.append(CacheMark(where, tool["cache_control"], "tools", block=k))
    return marks


def check_cache_control(params: MessageCreateParams | CountTokensParams) -> None:
    """`cache_control` as the hosted API takes it: `{"type": "ephemeral"}` with an optional
    `ttl` of 5m or 1h, at most four breakpoints."""
    marks = cache_marks(params)
    if len(marks) > MAX_CACHE_BREAKPOINTS:
        raise InvalidParams(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be"
            f" provided. Found {len(marks)}."
        )
    for where, mark, *_ in marks:
        if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
            raise InvalidParams(f"{where}.type: Input should be 'ephemeral'")
        if mark.get("ttl", "5m") not in CACHE_TTL_SECONDS:
            raise InvalidParams(f"{where}.ttl: Input should be '5m' or '1h'")
        unknown = sorted(set(mark) - {"type", "ttl"})
        if unknown:
            raise InvalidParams(f"{where}.{unknown[0]}: Extra inputs are not permitted")
