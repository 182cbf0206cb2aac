"""Drive one client library against batchyard, unchanged but for its base URL, key and
model, and print what the library handed back as JSON (run by
tests/integration/test_frameworks.py in the frameworks venv):

    python drive.py FRAMEWORK BASE_URL API_KEY MODEL CASE [CASE ...]

It prints one JSON object, case by case (one process a framework: importing one costs
seconds). Each case returns plain data: the text, the parsed object's type and fields, the
tool calls (name and arguments), or the error's type and message.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import pydantic

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from GitHub


class City(pydantic.BaseModel):
    """A city and its country."""

    name: str
    country: str


QUESTION = "Paris is the capital of France. Extract the city."
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city"}},
    "required": ["city"],
}


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is 18 C and sunny in {city}."


# --- LangChain ----------------------------------------------------------------------


def _langchain_history() -> list[Any]:
    """A conversation that called the tool before, as agent loops build them."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    out: list[Any] = []
    for n, city in enumerate(("Paris", "London")):
        call = {"name": "get_weather", "args": {"city": city}, "id": f"toolu_{n}"}
        out += [
            HumanMessage(f"What is the weather in {city}?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage(get_weather(city), tool_call_id=f"toolu_{n}"),
            AIMessage(f"It is 18 C and sunny in {city}."),
        ]
    return [*out, HumanMessage("What is the weather in Tokyo?")]


def langchain(llm: Any, case: str) -> Any:
    from langchain_core.messages import ToolMessage

    if case == "text":
        return {"text": llm.invoke("Say hello.").text}
    if case == "stream":
        return {"text": "".join(c.text for c in llm.stream("Say hello."))}
    if case == "batch":
        return {"texts": [m.text for m in llm.batch(["Say hello.", "Say goodbye."])]}
    if case == "structured":
        city = llm.with_structured_output(City).invoke(QUESTION)
        return {"type": type(city).__name__, "value": city.model_dump()}
    if case == "tools_auto":
        reply = llm.bind_tools([get_weather]).invoke(_langchain_history())
        return {"tool_calls": [[c["name"], c["args"]] for c in reply.tool_calls],
                "text": reply.text}  # fmt: skip
    if case == "tool_loop":
        bound = llm.bind_tools([get_weather], tool_choice="get_weather")
        ask = [("human", "What is the weather in Oslo?")]
        reply = bound.invoke(ask)
        [call] = reply.tool_calls
        done = ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"])
        answer = llm.bind_tools([get_weather]).invoke([*ask, reply, done])  # the model's choice
        return {"tool_calls": [[call["name"], call["args"]]], "text": answer.text,
                "then": [[c["name"], c["args"]] for c in answer.tool_calls]}  # fmt: skip
    raise ValueError(case)


def langchain_anthropic(base_url: str, key: str, model: str, case: str) -> Any:
    from langchain_anthropic import ChatAnthropic

    llm = ChatAnthropic(model=model, base_url=base_url, api_key=key, temperature=0,
                        max_tokens=60, max_retries=0)  # fmt: skip
    return langchain(llm, case)


def langchain_openai(base_url: str, key: str, model: str, case: str) -> Any:
    from langchain_openai import ChatOpenAI

    responses = case.endswith("_responses")
    llm = ChatOpenAI(model=model, base_url=f"{base_url}/v1", api_key=key, temperature=0,
                     max_tokens=60, max_retries=0, use_responses_api=responses)  # fmt: skip
    return langchain(llm, case.removesuffix("_responses"))


# --- pydantic-ai ----------------------------------------------------------------------


def pydantic_ai(base_url: str, key: str, model: str, case: str) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.settings import ModelSettings

    kind, _, case = case.partition(":")
    if kind == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        chosen: Any = AnthropicModel(
            model, provider=AnthropicProvider(base_url=base_url, api_key=key)
        )
    else:
        from pydantic_ai.providers.openai import OpenAIProvider

        provider = OpenAIProvider(base_url=f"{base_url}/v1", api_key=key)
        if kind == "openai-responses":
            from pydantic_ai.models.openai import OpenAIResponsesModel

            chosen = OpenAIResponsesModel(model, provider=provider)
        else:
            from pydantic_ai.models.openai import OpenAIChatModel

            chosen = OpenAIChatModel(model, provider=provider)
    settings = ModelSettings(temperature=0.0, max_tokens=80)
    if case == "text":
        return {"text": Agent(chosen, model_settings=settings).run_sync("Say hello.").output}
    if case == "stream":
        agent = Agent(chosen, model_settings=settings)
        with agent.run_stream_sync("Say hello.") as run:
            return {"text": "".join(run.stream_text(delta=True))}
    if case == "structured":
        city = Agent(chosen, output_type=City, model_settings=settings).run_sync(QUESTION).output
        return {"type": type(city).__name__, "value": city.model_dump()}
    if case == "tools":
        agent = Agent(chosen, model_settings=settings, tools=[get_weather])
        result = agent.run_sync("What is the weather in Oslo?")
        calls = [
            [part.tool_name, part.args_as_dict()]
            for message in result.all_messages()
            for part in message.parts
            if part.part_kind == "tool-call"
        ]
        return {"text": result.output, "tool_calls": calls}
    raise ValueError(case)


# --- instructor -------------------------------------------------------------------------


def instructor_(base_url: str, key: str, model: str, case: str) -> Any:
    import instructor

    ask = [{"role": "user", "content": QUESTION}]
    if case == "openai":
        import openai

        client = instructor.from_openai(openai.OpenAI(base_url=f"{base_url}/v1", api_key=key))
        city = client.chat.completions.create(model=model, response_model=City, messages=ask,
                                              temperature=0, max_tokens=60)  # fmt: skip
    elif case == "openai_json":
        import openai

        client = instructor.from_openai(
            openai.OpenAI(base_url=f"{base_url}/v1", api_key=key), mode=instructor.Mode.JSON_SCHEMA
        )
        city = client.chat.completions.create(model=model, response_model=City, messages=ask,
                                              temperature=0, max_tokens=60)  # fmt: skip
    elif case == "anthropic":
        import anthropic

        client = instructor.from_anthropic(anthropic.Anthropic(base_url=base_url, api_key=key))
        # the SDK takes no temperature for today's models: the model's default applies
        city = client.messages.create(model=model, response_model=City, messages=ask,
                                      max_tokens=60)  # fmt: skip
    else:
        raise ValueError(case)
    return {"type": type(city).__name__, "value": city.model_dump()}


# --- LiteLLM ----------------------------------------------------------------------------


def litellm_(base_url: str, key: str, model: str, case: str) -> Any:
    import litellm

    provider, _, case = case.partition(":")
    where = {"anthropic": base_url, "openai": f"{base_url}/v1"}[provider]
    kwargs: dict[str, Any] = {"model": f"{provider}/{model}", "api_base": where, "api_key": key,
                              "temperature": 0, "max_tokens": 60}  # fmt: skip
    ask = [{"role": "user", "content": "Say hello."}]
    if case == "text":
        return {"text": litellm.completion(messages=ask, **kwargs).choices[0].message.content}
    if case == "stream":
        chunks = litellm.completion(messages=ask, stream=True, **kwargs)
        return {"text": "".join(c.choices[0].delta.content or "" for c in chunks)}
    if case == "tools":
        tool = {"type": "function", "function": {"name": "get_weather",
                "description": "Get the current weather in a city", "parameters": WEATHER_SCHEMA}}  # fmt: skip
        reply = litellm.completion(
            messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
            tools=[tool], tool_choice={"type": "function", "function": {"name": "get_weather"}},
            **kwargs,
        ).choices[0].message  # fmt: skip
        calls = [[c.function.name, json.loads(c.function.arguments)] for c in reply.tool_calls]
        return {"tool_calls": calls}
    raise ValueError(case)


DRIVERS: dict[str, Callable[[str, str, str, str], Any]] = {
    "langchain-anthropic": langchain_anthropic,
    "langchain-openai": langchain_openai,
    "pydantic-ai": pydantic_ai,
    "instructor": instructor_,
    "litellm": litellm_,
}


def main() -> None:
    framework, base_url, key, model, *cases = sys.argv[1:]
    out: dict[str, Any] = {}
    for case in cases:
        try:
            out[case] = DRIVERS[framework](base_url, key, model, case)
        except Exception as exc:  # what the library raised, for the test to show
            out[case] = {"error": type(exc).__name__, "message": str(exc)[:2000]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
