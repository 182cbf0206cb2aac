"""An OpenAI Responses API request (`POST /v1/responses`) as a Messages request.

The request is first written as the Chat Completions body it means (`chat_body`), then
read by `translate/chat_to_messages.py`, so both OpenAI dialects map, accept and refuse
the same way: `input` (a string, or items: messages with text and image parts,
`function_call`, `function_call_output`; earlier `reasoning` items are skipped as
earlier thinking is), `instructions`, function `tools` and `tool_choice`,
`parallel_tool_calls`, `text.format`, `reasoning.effort`, `max_output_tokens`,
`temperature`, `top_p`. Built-in tools (web search, file search, computer use, code
interpreter, …) and anything else that would change the answer but cannot be honoured
are refused by name.
"""

from __future__ import annotations

from typing import Any

from batchyard.translate.chat_to_messages import ChatRequestError, check_fields, messages_request
from batchyard.wire.messages import MessageCreateParams

# What becomes of each field (any other is refused, as OpenAI refuses it).
CARRIED = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
    "reasoning", "max_output_tokens", "temperature", "top_p", "previous_response_id",
    "metadata", "store", "stream", "stream_options", "user", "safety_identifier",
    "prompt_cache_key", "prompt_cache_retention", "service_tier", "truncation", "include",
})  # fmt: skip
REFUSED: dict[str, tuple[tuple[object, ...], str]] = {
    "background": ((None, False), "background responses are not offered here"),
    "conversation": ((None,), "conversations are not offered here: use previous_response_id"),
    "prompt": ((None,), "stored prompts are not offered here"),
    "max_tool_calls": ((None,), "a cap on built-in tool calls has nothing to cap here"),
    "top_logprobs": ((None, 0), "log probabilities are not returned here"),
}
BUILT_IN = ("web_search", "file_search", "computer", "code_interpreter", "image_generation",
            "mcp", "local_shell", "shell", "apply_patch", "custom")  # fmt: skip
_PART_TEXT = ("input_text", "output_text", "text", "refusal")


class ResponsesRequestError(ChatRequestError):
    """A request the Responses API would refuse; `param` names the field."""


def _check_fields(body: dict[str, Any]) -> None:
    check_fields(body, CARRIED, REFUSED, "Unknown parameter: '{key}'.", ResponsesRequestError)
    if body.get("truncation") not in (None, "disabled", "auto"):
        raise ResponsesRequestError("truncation: must be 'auto' or 'disabled'", "truncation")
    include = body.get("include")
    if include not in (None, []):
        raise ResponsesRequestError(
            "include: no extra output data (logprobs, sources, encrypted reasoning) is"
            " returned here",
            "include",
        )


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content as Chat content: a string, or text and image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ResponsesRequestError(f"{where}: must be a string or a list of parts", "input")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _PART_TEXT:
            text = part.get("text", part.get("refusal", ""))
            parts.append({"type": "text", "text": str(text)})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind == "input_image":
            raise ResponsesRequestError(
                f"{where}.{i}.image_url: required (a URL or a data: URL; file_id is not read here)",
                "input",
            )
        else:
            raise ResponsesRequestError(f"{where}.{i}: unsupported content part {kind!r}", "input")
    return parts


def _flat_text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content)


def chat_messages(items: list[Any], where: str = "input") -> list[dict[str, Any]]:
    """Responses input items as Chat messages (consecutive calls: one assistant turn)."""
    chat: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}.{i}"
        if not isinstance(item, dict):
            raise ResponsesRequestError(f"{at}: must be an object", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ResponsesRequestError(
                    f"{at}.role: must be user, assistant, system or developer", "input"
                )
            content = _parts(item.get("content"), f"{at}.content")
            if role != "user":
                content = _flat_text(content)
            chat.append({"role": role, "content": content})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            last = chat[-1] if chat else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                chat.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _flat_text(_parts(output, at))
            chat.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # earlier reasoning is not part of the prompt (as with thinking)
        else:
            raise ResponsesRequestError(f"{at}.type: {kind!r} items are not read here", "input")
    return chat


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ResponsesRequestError("tools: must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            name = str(kind)
            if kind is not None and str(kind).startswith(BUILT_IN):
                raise ResponsesRequestError(
                    f"tools.{i}: the built-in tool {name!r} is not offered here; only"
                    " function tools are",
                    "tools",
                )
            raise ResponsesRequestError(f"tools.{i}.type: must be 'function'", "tools")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise ResponsesRequestError(
        f"tool_choice: {kind!r} is not offered here (auto, none, required or a function)",
        "tool_choice",
    )


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise ResponsesRequestError("text: must be an object", "text")
    if text.get("verbosity") not in (None, "medium"):
        raise ResponsesRequestError("text.verbosity: only the default is supported", "text")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
        raise ResponsesRequestError(
            "text.format.type: must be 'text', 'json_object' or 'json_schema'", "text"
        )
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": spec}


def chat_body(body: dict[str, Any], earlier: list[dict[str, Any]]) -> dict[str, Any]:
    """The Chat Completions body a Responses request means; `earlier`: the Chat messages
    of the conversation it continues (`previous_response_id`)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ResponsesRequestError("model: required", "model")
    _check_fields(body)
    given = body.get("input")
    if isinstance(given, str):
        items: list[Any] = [{"role": "user", "content": given}]
    elif isinstance(given, list) and given:
        items = given
    else:
        raise ResponsesRequestError("input: required, a string or a non-empty list", "input")
    chat = chat_messages(items)
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ResponsesRequestError("instructions: must be a string", "instructions")
        chat.insert(0, {"role": "system", "content": instructions})
    out: dict[str, Any] = {"model": body["model"], "messages": [*earlier, *chat]}
    for key in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("max_output_tokens") is not None:
        out["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None and body.get("tools"):
        out["tool_choice"] = choice
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise ResponsesRequestError("reasoning: must be an object", "reasoning")
        if reasoning.get("summary") not in (None,) or reasoning.get("generate_summary"):
            raise ResponsesRequestError(
                "reasoning.summary: reasoning summaries are not produced here", "reasoning"
            )
        if reasoning.get("effort") is not None:
            out["reasoning_effort"] = reasoning["effort"]
    return out


_RENAMES = (
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("messages", "input"),
)


def messages_params(body: dict[str, Any], earlier: list[dict[str, Any]]) -> MessageCreateParams:
    """A Responses request as a Messages request; ResponsesRequestError names the field."""
    try:
        return messages_request(chat_body(body, earlier))
    except ResponsesRequestError:
        raise
    except ChatRequestError as exc:
        message, param = str(exc), exc.param
        for chat, ours in _RENAMES:
            message = message.replace(chat, ours)
            if param == chat.split(".")[0]:
                param = ours.split(".")[0]
        raise ResponsesRequestError(message, param) from None
