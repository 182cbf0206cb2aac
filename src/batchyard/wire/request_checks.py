"""The checks of a Messages request the hosted API makes beyond field types: tools,
`tool_choice`, `thinking` and `output_config`.

Every engine gets requests that passed them; what an engine then does with each
field (honours, ignores or refuses) is `engines/features.py`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from batchyard.grammar.json_schema import SchemaError, json_schema_grammar
from batchyard.wire.errors import InvalidParams

if TYPE_CHECKING:
    from batchyard.wire.messages import CountTokensParams, MessageCreateParams

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
TOOL_CHOICES = ("auto", "any", "tool", "none")
THINKING_TYPES = ("enabled", "disabled", "adaptive", "between_tools")
MIN_THINKING_BUDGET = 1024


def check_schema(schema: dict[str, Any], where: str) -> None:
    """A schema the hosted structured-outputs feature accepts (else a 400 naming the part)."""
    try:
        json_schema_grammar(schema)
    except SchemaError as exc:
        raise InvalidParams(exc.at(where)) from None


def is_custom_tool(tool: dict[str, Any]) -> bool:
    """A client tool (its `input` is ours to produce), not a server tool (web search…)."""
    return tool.get("type") in (None, "custom")


def forced_tools(params: MessageCreateParams) -> list[tuple[int, dict[str, Any]]]:
    """The client tools `tool_choice` makes the model call one of (with their index in
    `tools`): all of them for `any`, the named one for `tool`, none otherwise."""
    choice = params.tool_choice or {}
    if choice.get("type") not in ("any", "tool"):
        return []
    return [
        (k, t)
        for k, t in enumerate(params.tools or [])
        if is_custom_tool(t) and (choice["type"] == "any" or t.get("name") == choice.get("name"))
    ]


def _check_tools(tools: list[dict[str, Any]]) -> list[str]:
    names = []
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidParams(f"tools.{k}: Input should be an object")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise InvalidParams(
                f"tools.{k}.name: String should match pattern '{TOOL_NAME.pattern}'"
            )
        names.append(name)
        if not is_custom_tool(tool):
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise InvalidParams(f"tools.{k}.input_schema.type: Input should be 'object'")
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidParams(f"tools.{k}.strict: Input should be a valid boolean")
        if strict:
            check_schema(schema, f"tools.{k}.input_schema")
    if len(set(names)) != len(names):
        raise InvalidParams("tools: Tool names must be unique.")
    return names


def _check_tool_choice(choice: dict[str, Any], names: list[str]) -> None:
    kind = choice.get("type")
    if kind not in TOOL_CHOICES:
        raise InvalidParams("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind in ("any", "tool") and not names:
        raise InvalidParams("tool_choice: may only be specified while providing tools")
    if kind == "tool" and choice.get("name") not in names:
        raise InvalidParams(f"tool_choice.name: no tool named {choice.get('name')!r} in tools")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidParams(
            "tool_choice.disable_parallel_tool_use: Input should be a valid boolean"
        )


def _check_thinking(thinking: dict[str, Any], max_tokens: int | None) -> None:
    kind = thinking.get("type")
    if kind not in THINKING_TYPES:
        raise InvalidParams(
            "thinking.type: Input should be 'enabled', 'disabled', 'adaptive' or 'between_tools'"
        )
    if kind != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        raise InvalidParams(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to"
            f" {MIN_THINKING_BUDGET}"
        )
    if max_tokens is not None and budget >= max_tokens:
        raise InvalidParams("`max_tokens` must be greater than `thinking.budget_tokens`.")


def check_request(params: MessageCreateParams | CountTokensParams) -> None:
    """Raises InvalidParams naming the field, in the hosted API's words where known."""
    names = _check_tools(params.tools or [])
    if params.tool_choice is not None:
        _check_tool_choice(params.tool_choice, names)
    if params.thinking is not None:
        _check_thinking(params.thinking, getattr(params, "max_tokens", None))
    output = params.output_config
    if output is not None and output.format is not None and hasattr(output.format, "schema"):
        check_schema(output.format.schema, "output_config.format.schema")
