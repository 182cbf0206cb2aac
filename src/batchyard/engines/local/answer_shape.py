"""What shape an answer of the local model must take, and the grammar that holds it there.

A forced tool call (`tool_choice` `any` or `tool`) is a JSON object
`{"name": …, "input": …}` whose input follows the tool's `input_schema`; a
structured output (`output_config.format`) is a JSON document valid against its
schema; the rest is free text. The model is told the shape (at the end of the
system prompt, so a shared system prompt stays a shared prefix) and the grammar
makes sure of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from batchyard import ids
from batchyard.errors import EngineError
from batchyard.grammar.json_schema import (
    SchemaError,
    json_object_grammar,
    json_schema_grammar,
    tool_call_grammar,
)
from batchyard.wire.messages import (
    JsonObjectFormat,
    JsonSchemaFormat,
    MessageCreateParams,
    ToolUseContent,
)
from batchyard.wire.request_checks import forced_tools


@dataclass(frozen=True, slots=True)
class AnswerShape:
    grammar: str | None = None
    instructions: str = ""
    """Told to the model after the system prompt."""
    tool_call: bool = False


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


def _forced_call(params: MessageCreateParams, choice: dict[str, Any]) -> AnswerShape:
    tools = forced_tools(params)
    try:
        grammar = tool_call_grammar([(t["name"], t["input_schema"]) for _, t in tools])
    except SchemaError as exc:
        k = int(exc.path[0])
        inner = SchemaError(exc.path[1:], exc.message)
        raise _invalid(
            inner.at(f"tools.{tools[k][0]}.input_schema")
            + " (the local model enforces a forced tool's input_schema whole)"
        ) from None
    listed = "\n".join(
        f"- {t['name']}: {t.get('description') or ''}\n"
        f"  input schema: {json.dumps(t['input_schema'], ensure_ascii=False)}"
        for _, t in tools
    )
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
            raise _invalid(
                "tool_choice: the local model cannot decide by itself when to call a tool;"
                ' force a call with {"type": "any"} or {"type": "tool", "name": ...},'
                ' or send {"type": "none"}'
            )
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
