"""What shape an answer of the local model must take, and the grammar that holds it there.

A forced tool call (`tool_choice` `any` or `tool`) is a JSON object
`{"name": …, "input": …}` whose input follows the tool's `input_schema`; a
structured output (`output_config.format`) is a JSON document valid against its
schema; the rest is free text. The model is told the shape (at the end of the
system prompt, so a shared system prompt stays a shared prefix) and the grammar
makes sure of it.

With tools it may choose to call (`tool_choice` `auto`, or none given) the answer is
free text that may end in a block of calls, written as SmolLM2's instruct data
wrote them: `<tool_call>[{"name": …, "arguments": …}]</tool_call>`. The grammar is
lazy: it applies from the moment the model opens the block (llama.cpp's lazy grammar,
triggered by `TOOL_CALL_OPEN`), so free text stays free and every call is valid JSON
against its tool's schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchyard import ids
from batchyard.errors import EngineError
from batchyard.grammar.json_schema import (
    SchemaError,
    json_object_grammar,
    json_schema_grammar,
    tool_block_grammar,
    tool_call_grammar,
)
from batchyard.wire.messages import (
    JsonObjectFormat,
    JsonSchemaFormat,
    MessageCreateParams,
    ToolUseContent,
)
from batchyard.wire.request_checks import forced_tools, is_custom_tool

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"


@dataclass(frozen=True, slots=True)
class AnswerShape:
    grammar: str | None = None
    instructions: str = ""
    """Told to the model after the system prompt."""
    tool_call: bool = False
    """A forced call: the whole answer is one call."""
    trigger: str | None = None
    """The grammar applies only from this text on (tools the model may call)."""


FREE_TEXT = AnswerShape()


def _invalid(message: str) -> EngineError:
    return EngineError("invalid_request_error", message, retryable=False)


def call_text(name: str, tool_input: Any) -> str:
    """A tool call as the local model writes it."""
    return json.dumps({"name": name, "input": tool_input}, ensure_ascii=False)


def tool_use_of(text: str) -> ToolUseContent:
    """The `tool_use` block of a finished call (its grammar made it valid JSON)."""
    call = json.loads(text)
    return ToolUseContent(id=ids.new_tool_use_id(), name=call["name"], input=call["input"])


def partial_end(text: str, wanted: str) -> int:
    """How many characters at the end of `text` begin `wanted` (not all of it)."""
    for k in range(min(len(wanted) - 1, len(text)), 0, -1):
        if text.endswith(wanted[:k]):
            return k
    return 0


def chosen_calls(text: str, finished: bool) -> tuple[str, list[ToolUseContent]]:
    """An answer with tools the model may call, as (its text, its calls): the text before
    a block of calls (trailing blank space dropped), and the calls when the block is
    whole (`finished`: the answer ended by itself, so its grammar closed the block).
    A block cut short (max_tokens) leaves no trace: not its calls, not its wrapper."""
    at = text.find(TOOL_CALL_OPEN)
    if at < 0:
        if not finished and (cut := partial_end(text, TOOL_CALL_OPEN)):
            return text[:-cut].rstrip(), []  # cut while opening the block
        return text, []
    head = text[:at].rstrip()
    if not finished:
        return head, []
    block = text[at + len(TOOL_CALL_OPEN) : text.rindex(TOOL_CALL_CLOSE)]
    calls = [
        ToolUseContent(id=ids.new_tool_use_id(), name=c["name"], input=c["arguments"])
        for c in json.loads(block)
    ]
    return head, calls


def _tools_grammar(
    tools: list[tuple[int, dict[str, Any]]], compile_: Callable[[list[Any]], str]
) -> str:
    try:
        return compile_([(t["name"], t["input_schema"]) for _, t in tools])
    except SchemaError as exc:
        k = int(exc.path[0])
        inner = SchemaError(exc.path[1:], exc.message)
        raise _invalid(
            inner.at(f"tools.{tools[k][0]}.input_schema")
            + " (the local model enforces a tool's input_schema whole)"
        ) from None


def _listed(tools: list[tuple[int, dict[str, Any]]]) -> str:
    return "\n".join(
        f"- {t['name']}: {t.get('description') or ''}\n"
        f"  input schema: {json.dumps(t['input_schema'], ensure_ascii=False)}"
        for _, t in tools
    )


def _chosen_calls(params: MessageCreateParams, choice: dict[str, Any]) -> AnswerShape:
    tools = [(k, t) for k, t in enumerate(params.tools or []) if is_custom_tool(t)]
    parallel = not choice.get("disable_parallel_tool_use")
    grammar = _tools_grammar(
        tools,
        lambda listed: tool_block_grammar(
            listed, parallel=parallel, open_=TOOL_CALL_OPEN, close=TOOL_CALL_CLOSE
        ),
    )
    calls = "one or more function calls" if parallel else "one function call"
    instructions = (
        "You may call these functions when they help answer. To call, end your reply"
        f" with {calls} in this format:\n"
        f'{TOOL_CALL_OPEN}[{{"name": "func_name", "arguments": {{"arg": "value"}}}}]'
        f"{TOOL_CALL_CLOSE}\nOtherwise answer in plain text.\nFunctions:\n{_listed(tools)}"
    )
    return AnswerShape(grammar, instructions, trigger=TOOL_CALL_OPEN)


def _forced_call(params: MessageCreateParams, choice: dict[str, Any]) -> AnswerShape:
    tools = forced_tools(params)
    grammar = _tools_grammar(tools, tool_call_grammar)
    listed = _listed(tools)
    which = "one of these tools" if choice["type"] == "any" else "this tool"
    instructions = (
        f"Answer by calling {which}. Reply with only a JSON object:"
        f' {{"name": <the tool\'s name>, "input": <its input>}}.\nTools:\n{listed}'
    )
    return AnswerShape(grammar, instructions, tool_call=True)


def answer_shape(params: MessageCreateParams) -> AnswerShape:
    """Raises EngineError (invalid_request_error) for what the local model cannot do."""
    choice = params.tool_choice or {"type": "auto"}
    if params.tools and choice["type"] != "none":
        if choice["type"] == "auto":
            if not any(is_custom_tool(t) for t in params.tools):
                return FREE_TEXT
            return _chosen_calls(params, choice)
        return _forced_call(params, choice)
    output = params.output_config.format if params.output_config else None
    if isinstance(output, JsonSchemaFormat):
        schema = json.dumps(output.schema, ensure_ascii=False)
        return AnswerShape(
            json_schema_grammar(output.schema),
            f"Reply with only a JSON document valid against this JSON schema:\n{schema}",
        )
    if isinstance(output, JsonObjectFormat):
        return AnswerShape(json_object_grammar(), "Reply with only a JSON object.")
    return FREE_TEXT
