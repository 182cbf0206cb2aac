"""A Chat Completions request (the OpenAI dialect: `/v1/chat/completions`, batch
input lines) as a Messages request, validated like one: every field mapped, accepted
with no effect on the answer, or refused by name (the table below).
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from typing import Any

import msgspec

from batchyard.wire import json_limits
from batchyard.wire.errors import InvalidParams
from batchyard.wire.messages import MessageCreateParams
from batchyard.wire.params import decode_params

DEFAULT_MAX_TOKENS = 4096


# What becomes of each field of a Chat Completions request (every key of the `openai`
# SDK's `CompletionCreateParams`, plus `stream` and `top_k`). Any other key is refused,
# as OpenAI refuses it: nothing that would change the answer is dropped silently.
#
# MAPPED: max_completion_tokens (or max_tokens) → max_tokens; stop → stop_sequences;
# temperature (0-1, the Messages API's range: above it is refused); top_k (not OpenAI's,
# sent by clients of vLLM-like servers); tools[].function.strict → tools[].strict;
# parallel_tool_calls: false → tool_choice.disable_parallel_tool_use; response_format
# → output_config.format; reasoning_effort → output_config.effort (EFFORTS).
MAPPED = frozenset({
    "model", "messages", "max_completion_tokens", "max_tokens", "stop", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "parallel_tool_calls", "response_format",
    "reasoning_effort",
})  # fmt: skip
# ACCEPTED, with no effect on the answer: `stream` is served by api/chat.py; prompts are
# cached on their prefix alone; `prediction` is a latency hint; `seed` is best effort
# on OpenAI too, which promises no determinism.
ACCEPTED = frozenset({
    "stream", "stream_options", "user", "safety_identifier", "metadata", "store",
    "service_tier", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "prediction", "seed",
})  # fmt: skip
REFUSED: dict[str, tuple[tuple[object, ...], str]] = {
    # field: (the values that change nothing, why any other cannot be honoured)
    "n": ((None, 1), "only 1 choice per request is supported"),
    "frequency_penalty": ((None, 0), "no engine here applies a frequency penalty"),
    "presence_penalty": ((None, 0), "no engine here applies a presence penalty"),
    "logit_bias": ((None, {}), "no engine here applies a logit bias"),
    "logprobs": ((None, False), "log probabilities are not returned here"),
    "top_logprobs": ((None, 0), "log probabilities are not returned here"),
    "verbosity": ((None, "medium"), "only the default verbosity is supported"),
    "modalities": ((None, ["text"]), "only text output is supported"),
    "audio": ((None,), "only text output is supported"),
    "functions": ((None, []), "deprecated: use `tools`"),
    "function_call": ((None,), "deprecated: use `tool_choice`"),
    "web_search_options": ((None,), "no web search here"),
    "moderation": ((None,), "no moderation here"),
}
EFFORTS = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "xhigh", "max": "max"}  # fmt: skip
"""`reasoning_effort` → `output_config.effort` (below `low`: `low`, the least there is)."""


class ChatRequestError(ValueError):
    """The Chat Completions request cannot be served; `param` names the culprit."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ChatRequestError(f"{where}: only text parts are allowed here", where)
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise ChatRequestError(f"{where}: must be a string or a list of parts", where)


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise ChatRequestError(f"{where}.image_url.url: required", where)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").split(";")[0]
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ChatRequestError(f"{where}: must be a string or a list of parts", where)
    blocks = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{where}.{i}"))
        else:
            raise ChatRequestError(f"{where}.{i}: unsupported content part {kind!r}", where)
    return blocks


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"), f"{where}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        try:
            arguments = json_limits.loads(
                function.get("arguments") or "{}", f"{where}.tool_calls.{j}.function.arguments"
            )
        except InvalidParams as exc:
            raise ChatRequestError(str(exc), where) from None
        except ValueError:
            raise ChatRequestError(
                f"{where}.tool_calls.{j}.function.arguments: not valid JSON", where
            ) from None
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    return blocks


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise ChatRequestError(f"tools.{i}.function.name: required", "tools")
        tool = {
            "name": function["name"],
            "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("strict") is not None:  # the arguments keep to the schema exactly
            tool["strict"] = function["strict"]
        out.append(tool)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    """`tool_choice` (and `parallel_tool_calls: false`) as the Messages `tool_choice`."""
    if not isinstance(parallel, bool | None):
        raise ChatRequestError("parallel_tool_calls: must be a boolean", "parallel_tool_calls")
    out: dict[str, Any] | None
    if choice is None:
        out = {"type": "auto"} if parallel is False else None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise ChatRequestError(
            "tool_choice: must be auto, none, required or a function", "tool_choice"
        )
    if out is not None and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def check_fields(
    body: dict[str, Any],
    known: Container[str],
    refused: Mapping[str, tuple[tuple[object, ...], str]],
    unknown: str,
    error: type[ChatRequestError],
) -> None:
    """Refuse a field not `known` (`unknown`, formatted with its name), or a `refused` one
    whose value is not among its neutral ones (it would change the answer but cannot be
    honoured): an `error` naming the field. The Chat Completions and Responses bodies'."""
    for key, value in body.items():
        if key in known:
            continue
        if key not in refused:
            raise error(unknown.format(key=key), key)
        neutral, why = refused[key]
        if value not in neutral:
            raise error(f"{key}: {why}", key)


def _check_fields(body: dict[str, Any]) -> None:
    check_fields(
        body,
        MAPPED | ACCEPTED,
        REFUSED,
        "Unrecognized request argument supplied: {key}",
        ChatRequestError,
    )


_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FORMAT_KEYS = {"text": {"type"}, "json_object": {"type"}, "json_schema": {"type", "json_schema"}}


def _format_error(path: str, what: str) -> ChatRequestError:
    return ChatRequestError(f"response_format{path}: {what}", "response_format")


def _refuse_extra(value: dict[str, Any], known: set[str], path: str) -> None:
    extra = sorted(set(value) - known)
    if extra:
        raise _format_error(f"{path}.{extra[0]}", "unknown parameter")


def _output_format(value: Any) -> dict[str, Any] | None:
    """`response_format` as `output_config.format` (None for plain text). The schema is
    enforced even when `strict` is false: an answer valid against it is what was asked."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _format_error("", "must be an object")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in _FORMAT_KEYS:
        raise _format_error(
            ".type", f"must be 'text', 'json_object' or 'json_schema', not {kind!r}"
        )
    _refuse_extra(value, _FORMAT_KEYS[kind], "")
    if kind != "json_schema":
        return None if kind == "text" else {"type": "json_object"}
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise _format_error(".json_schema", "required, an object with `name` and `schema`")
    _refuse_extra(spec, {"name", "schema", "strict", "description"}, ".json_schema")
    if not isinstance(spec.get("name"), str) or not _NAME.fullmatch(spec["name"]):
        raise _format_error(".json_schema.name", "required, 1-64 letters, digits, '_' or '-'")
    if not isinstance(spec.get("schema"), dict):
        what = "must be a JSON Schema object" if "schema" in spec else "required (a JSON Schema)"
        raise _format_error(".json_schema.schema", what)
    if not isinstance(spec.get("strict"), bool | None):
        raise _format_error(".json_schema.strict", "must be a boolean")
    return {"type": "json_schema", "schema": spec["schema"]}


def _output_config(body: dict[str, Any]) -> dict[str, Any] | None:
    config: dict[str, Any] = {}
    fmt = _output_format(body.get("response_format"))
    if fmt is not None:
        config["format"] = fmt
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise ChatRequestError(
                f"reasoning_effort: must be one of {', '.join(EFFORTS)}", "reasoning_effort"
            )
        config["effort"] = EFFORTS[effort]
    return config or None


_RENAMES = (
    (re.compile(r"output_config\.format\.schema\b"), "response_format.json_schema.schema"),
    (re.compile(r"output_config\.format\b"), "response_format"),
    (re.compile(r"output_config\.effort\b"), "reasoning_effort"),
    (re.compile(r"tools\.(\d+)\.input_schema\b"), r"tools.\1.function.parameters"),
    (re.compile(r"stop_sequences\b"), "stop"),
)
"""A Messages path in a decoder's message → the Chat Completions path it came from."""


def _chat_error(exc: InvalidParams) -> ChatRequestError:
    """The decoder's complaint about the translated request, in the Chat request's terms:
    its path renamed (`output_config.format.schema.…` → `response_format.json_schema
    .schema.…`) and `param` the top-level Chat field at fault."""
    message = str(exc)
    for path, chat_path in _RENAMES:
        if path.match(message):
            message = path.sub(chat_path, message, count=1)
            break
    head = re.split(r"[.:\s]", message, maxsplit=1)[0]
    return ChatRequestError(message, head if head in MAPPED else None)


def messages_request(body: dict[str, Any]) -> MessageCreateParams:
    """A Chat Completions request body as a Messages request (validated like one)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ChatRequestError("model: required", "model")
    chat = body.get("messages")
    if not isinstance(chat, list) or not chat:
        raise ChatRequestError("messages: must be a non-empty list", "messages")
    _check_fields(body)
    system, turns = _turns(chat)
    params: dict[str, Any] = {
        "model": body["model"],
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        params["system"] = "\n\n".join(system)
    _add_sampling(body, params)
    if body.get("tools"):
        params["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            params["tool_choice"] = choice
    output_config = _output_config(body)
    if output_config is not None:
        params["output_config"] = output_config
    try:
        return decode_params(msgspec.json.encode(params))
    except InvalidParams as exc:
        raise _chat_error(exc) from None


def _turns(chat: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The system texts and the alternating user/assistant turns of a chat."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:  # Messages alternates roles: merge
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(chat):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), f"{where}.content"))
        elif role == "user":
            add("user", _user_blocks(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            add("assistant", _assistant_blocks(message, where))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text(message.get("content"), f"{where}.content"),
            }
            add("user", [result])
        else:
            raise ChatRequestError(f"{where}.role: unsupported role {role!r}", "messages")
    return system, turns


def _add_sampling(body: dict[str, Any], params: dict[str, Any]) -> None:
    stop = body.get("stop")
    if stop:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            # OpenAI's range goes to 2; the engines here sample on the Messages API's 0-1
            raise ChatRequestError(
                "temperature: must be between 0 and 1 here (the Messages API's range)",
                "temperature",
            )
        params["temperature"] = float(temperature)
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            params[key] = body[key]
