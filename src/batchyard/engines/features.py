"""Request features that only some engines can honour: each is done or refused by name.

A Messages request field that would change the answer is never dropped on the
way to an engine that cannot do it: `refuse_unsupported` answers such a request
with an `invalid_request_error` naming the field (before it takes a slot). An
engine lists what it honours in its `features`; the Anthropic upstream passes
everything on. Fields that do not change the answer (`metadata`, `service_tier`,
`speed`, `inference_geo`, `diagnostics`) are accepted everywhere; what each
engine does with every field is the table in the README.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from batchyard.errors import EngineError
from batchyard.wire.messages import DocumentBlock, MessageCreateParams, ToolResultBlock
from batchyard.wire.request_checks import is_custom_tool

SERVER_SIDE = (
    "mcp_servers",
    "container",
    "context_management",
    "compaction",
    "fallbacks",
    "fallback_credit_token",
    "billing_policy",
    "thread",
)
"""Top-level fields that run on the hosted platform (remote MCP servers, code
execution containers, context editing, …): only an Anthropic upstream has them."""

ALL_FEATURES = frozenset({"server_tools", "citations", "task_budget", *SERVER_SIDE})


def _server_tools(params: MessageCreateParams) -> Iterator[str]:
    for k, tool in enumerate(params.tools or []):
        if isinstance(tool, dict) and not is_custom_tool(tool):
            yield f"tools.{k}: server tools ({tool.get('type')}) run on the hosted platform"


def _citations(params: MessageCreateParams) -> Iterator[str]:
    for i, message in enumerate(params.messages):
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            inner = block.content if isinstance(block, ToolResultBlock) else None
            pairs = [(where, block)]
            if isinstance(inner, list):  # documents inside a tool's result
                pairs += [(f"{where}.content.{k}", b) for k, b in enumerate(inner)]
            for at, doc in pairs:
                if isinstance(doc, DocumentBlock) and (doc.citations or {}).get("enabled"):
                    yield f"{at}.citations: cited answers are not supported"


def _task_budget(params: MessageCreateParams) -> Iterator[str]:
    if params.output_config is not None and params.output_config.task_budget is not None:
        yield "output_config.task_budget: runs on the hosted platform"


def _server_side(name: str) -> Callable[[MessageCreateParams], Iterator[str]]:
    def used(params: MessageCreateParams) -> Iterator[str]:
        value: Any = getattr(params, name)
        if value is not None and value != []:
            yield f"{name}: runs on the hosted platform"

    return used


_USES: dict[str, Callable[[MessageCreateParams], Iterator[str]]] = {
    "server_tools": _server_tools,
    "citations": _citations,
    "task_budget": _task_budget,
    **{name: _server_side(name) for name in SERVER_SIDE},
}


def refuse_unsupported(
    params: MessageCreateParams, engine_name: str, features: frozenset[str]
) -> None:
    """Raises EngineError (invalid_request_error) naming the first field used that the
    engine does not honour."""
    for feature, uses in _USES.items():
        if feature in features:
            continue
        for problem in uses(params):
            raise EngineError(
                "invalid_request_error",
                f"{problem}; the {engine_name!r} engine serving {params.model!r} cannot do it",
                retryable=False,
            )
