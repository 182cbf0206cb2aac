"""Platform features: refused by name on an engine without them, passed on by one with them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from batchyard.engines.features import ALL_FEATURES, refuse_unsupported
from batchyard.errors import EngineError
from batchyard.wire.params import decode_params

DOC = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "d"},
    "citations": {"enabled": True},
}


def params(**extra: Any) -> Any:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    return decode_params(msgspec.json.encode({**body, **extra}))


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0: server tools"),
        ({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}, "mcp_servers"),
        ({"container": "c1"}, "container"),
        ({"context_management": {"edits": []}}, "context_management"),
        ({"output_config": {"task_budget": {"type": "tokens", "total": 9}}}, "output_config.task_budget"),
        ({"messages": [{"role": "user", "content": [DOC]}]}, "messages.0.content.0.citations"),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [DOC]}]}]},
            "messages.0.content.0.content.0.citations",
        ),
    ],
)  # fmt: skip
def test_a_feature_the_engine_lacks_is_refused_by_name(extra: dict[str, Any], field: str) -> None:
    request = params(**extra)
    with pytest.raises(EngineError) as exc:
        refuse_unsupported(request, "local", frozenset())
    assert exc.value.error_type == "invalid_request_error" and not exc.value.retryable
    assert exc.value.message.startswith(field)
    refuse_unsupported(request, "anthropic", ALL_FEATURES)  # the upstream takes it


def test_fields_that_do_not_change_the_answer_pass_everywhere() -> None:
    request = params(
        speed="fast", inference_geo="eu", metadata={"user_id": "u"}, service_tier="auto"
    )
    refuse_unsupported(request, "local", frozenset())
