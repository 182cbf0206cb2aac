"""Tools the embedded model may choose to call (`tool_choice` auto): the lazy grammar of
a block of calls, the answer read back as text and `tool_use` blocks, and the streamed
text that never shows the block's wrapper."""

from __future__ import annotations

from typing import Any

import pytest

from batchyard.engines.local.answer_shape import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    answer_shape,
    chosen_calls,
)
from batchyard.engines.local.generation import Generation, Sampling
from batchyard.engines.local.prompt import chat_of
from batchyard.engines.local.sampling import emit
from batchyard.errors import EngineError
from batchyard.grammar.json_schema import tool_block_grammar
from batchyard.wire.messages import MessageCreateParams, MessageParam, ToolUseBlock

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def params(**extra: Any) -> MessageCreateParams:
    return MessageCreateParams(
        model="m",
        max_tokens=50,
        messages=[MessageParam(role="user", content="Weather in Oslo?")],
        tools=[WEATHER],
        **extra,
    )


def test_auto_and_no_choice_give_a_lazy_block_grammar() -> None:
    for choice in (None, {"type": "auto"}):
        shape = answer_shape(params(tool_choice=choice))
        assert shape.trigger == TOOL_CALL_OPEN and not shape.tool_call
        assert shape.grammar is not None and shape.grammar.startswith('root ::= "<tool_call>"')
        assert "get_weather" in shape.instructions
    assert answer_shape(params(tool_choice={"type": "none"})).trigger is None


def test_parallel_calls_unless_disabled() -> None:
    tools = [("t", {"type": "object"})]
    parallel = tool_block_grammar(tools, parallel=True, open_="<a>", close="</a>")
    single = tool_block_grammar(tools, parallel=False, open_="<a>", close="</a>")
    assert '(ws "," ws s-call)*' in parallel and "(ws" not in single.splitlines()[0]
    shape = answer_shape(params(tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert shape.grammar is not None and '","' not in shape.grammar.splitlines()[0]


def test_a_tool_schema_it_cannot_enforce_is_a_400_naming_the_tool() -> None:
    bad = {**WEATHER, "input_schema": {"type": "object", "additionalProperties": True}}
    with pytest.raises(EngineError, match=r"tools\.0\.input_schema"):
        answer_shape(MessageCreateParams(
            model="m", max_tokens=5, messages=[MessageParam(role="user", content="x")],
            tools=[bad],
        ))  # fmt: skip


def test_an_answer_read_back_as_text_and_calls() -> None:
    block = '[{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_weather", "arguments": {"city": "Rome"}}]'
    text, calls = chosen_calls(f"Let me look.\n {TOOL_CALL_OPEN}{block}{TOOL_CALL_CLOSE}", True)
    assert text == "Let me look."
    assert [(c.name, c.input) for c in calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert all(c.id.startswith("toolu_") for c in calls) and calls[0].id != calls[1].id
    # cut short: the text before it, nothing of the block
    assert chosen_calls(f'Sure {TOOL_CALL_OPEN}[{{"name": "get_w', False) == ("Sure", [])
    assert chosen_calls("Just text.\n", True) == ("Just text.\n", [])
    assert chosen_calls("Sure.\n<tool_c", False) == ("Sure.", [])  # cut while opening it


def test_earlier_calls_are_shown_to_the_model_as_it_writes_them() -> None:
    history = params(tool_choice={"type": "auto"})
    history.messages.append(
        MessageParam(
            role="assistant",
            content=[
                ToolUseBlock(id="toolu_1", name="get_weather", input={"city": "Oslo"}),
                ToolUseBlock(id="toolu_2", name="get_weather", input={"city": "Rome"}),
            ],
        )
    )
    chat = chat_of(history, answer_shape(history))
    assert chat[-1]["content"] == (
        '<tool_call>[{"name": "get_weather", "arguments": {"city": "Oslo"}},'
        ' {"name": "get_weather", "arguments": {"city": "Rome"}}]</tool_call>'
    )


def streamed(pieces: list[str], trigger: str | None = TOOL_CALL_OPEN) -> list[str]:
    """What `emit` streams of a text arriving in `pieces`, then finished."""
    out: list[str] = []
    g = Generation(
        prompt=[1], max_tokens=9, stop=[], sampling=Sampling(), done=lambda _: None,
        on_text=out.append, trigger=trigger,
    )  # fmt: skip
    for piece in pieces:
        g.out += piece.encode()
        emit(g, final=False)
    g.text = bytes(g.out).decode()
    emit(g, final=True)
    return out


def test_streamed_text_holds_back_what_may_open_a_call() -> None:
    out = streamed(["Let me", " look.", "\n<tool", "_call>[", '{"name"'])
    assert "".join(out) == "Let me look."
    assert out == ["Let me", " look."]  # the "\n<tool" held until it proved to be the block
    # a start of the trigger that turns out to be text goes out after all
    assert "".join(streamed(["a <to", "ol x", " end\n"])) == "a <tool x end\n"
    assert "".join(streamed(["a <to", "ol x"], trigger=None)) == "a <tool x"
