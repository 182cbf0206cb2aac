"""Request features that only some engines can honour: each is done or refused by name.

A Messages request field that would change the answer is never dropped on the
way to an engine that cannot do it: `refuse_unsupported` answers such a request
with an `invalid_request_error` naming the field (before it takes a slot). An
engine lists what it honours in its `features`; the Anthropic upstream passes
everything on. Fields that do not change the answer (`metadata`, `service_tier`,
`speed`, `inference_geo`, `diagnostics`) are accepted everywhere; what each
engine does with every field is the table in docs/api-compatibility.md.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def _uses(params: MessageCreateParams) -> Iterator[tuple[str, str]]:
    """(feature, what of the request uses it) for every feature of this module it uses."""
    for k, tool in enumerate(params.tools or []):
        if isinstance(tool, dict) and not is_custom_tool(tool):
            problem = f"tools.{k}: server tools ({tool.get('type')}) run on the hosted platform"
            yield "server_tools", problem
    for i, message in enumerate(params.messages):
        if isinstance(message.content, str):
            continue
        for j, block in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            pairs = [(where, block)]
            if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                pairs += [(f"{where}.content.{k}", b) for k, b in enumerate(block.content)]
            for at, doc in pairs:  # documents, and documents inside a tool's result
                if isinstance(doc, DocumentBlock) and (doc.citations or {}).get("enabled"):
                    yield "citations", f"{at}.citations: cited answers are not supported"
    if params.output_config is not None and params.output_config.task_budget is not None:
        yield "task_budget", "output_config.task_budget: runs on the hosted platform"
    for name in SERVER_SIDE:
        value: Any = getattr(params, name)
        if value is not None and value != []:
            yield name, f"{name}: runs on the hosted platform"


def refuse_unsupported(
    params: MessageCreateParams, engine_name: str, features: frozenset[str]
) -> None:
    """Raises EngineError (invalid_request_error) naming the first field used that the
    engine does not honour."""
    if features >= ALL_FEATURES:
        return
    for feature, problem in _uses(params):
        if feature not in features:
            raise EngineError(
                "invalid_request_error",
                f"{problem}; the {engine_name!r} engine serving {params.model!r} cannot do it",
                retryable=False,
            )
