"""The OpenAI Batch API with the official `openai` SDK: upload → create → poll →
download the output and error files → parse; cancel; list; input validation."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import openai
import pytest
from openai.types import Batch
from openai.types.responses import Response

from tests.conftest import ServerFactory, openai_client_for, workspace_key
from tests.serverproc import Server


def line(custom_id: str, content: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "model": "claude-test",
        "max_tokens": 40,
        "messages": [{"role": "user", "content": content}],
    }
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": body,
    } | overrides


def upload(oai: openai.OpenAI, lines: list[Any]) -> str:
    data = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    return oai.files.create(file=("input.jsonl", data.encode()), purpose="batch").id


def wait_done(oai: openai.OpenAI, batch_id: str, timeout: float = 30) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = oai.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        time.sleep(0.05)


def jsonl(oai: openai.OpenAI, file_id: str) -> dict[str, dict[str, Any]]:
    lines = [json.loads(x) for x in oai.files.content(file_id).text.splitlines()]
    return {x["custom_id"]: x for x in lines}


@pytest.fixture
def oai(server: Server) -> openai.OpenAI:
    return openai_client_for(server)


def test_upload_create_poll_download(oai: openai.OpenAI, client: anthropic.Anthropic) -> None:
    prompts = {f"req-{i}": f"Tell me about lighthouse number {i}" for i in range(20)}
    file_id = upload(
        oai,
        [line(k, v) for k, v in prompts.items()]
        + [
            line(
                "bad-model",
                "x",
                body={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
            )
        ],
    )
    batch = oai.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"project": "lighthouses"},
    )
    assert batch.id.startswith("batch_") and batch.status == "in_progress"
    assert batch.metadata == {"project": "lighthouses"}
    done = wait_done(oai, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (
        done.request_counts.total,
        done.request_counts.completed,
        done.request_counts.failed,
    ) == (21, 20, 1)
    assert done.completed_at and done.in_progress_at and done.finalizing_at
    assert done.output_file_id and done.error_file_id

    out = jsonl(oai, done.output_file_id)
    assert set(out) == set(prompts)
    for custom_id, prompt in prompts.items():
        response = out[custom_id]["response"]
        assert response["status_code"] == 200 and out[custom_id]["error"] is None
        body = response["body"]
        assert body["object"] == "chat.completion"
        # The same request through the Anthropic dialect gives the same completion.
        message = client.messages.create(
            model="claude-test", max_tokens=40, messages=[{"role": "user", "content": prompt}]
        )
        assert body["choices"][0]["message"]["content"] == message.content[0].text  # type: ignore[union-attr]
        assert body["usage"]["prompt_tokens"] == message.usage.input_tokens
    errors = jsonl(oai, done.error_file_id)
    assert list(errors) == ["bad-model"]
    assert errors["bad-model"]["response"]["status_code"] == 400
    assert "nope" in errors["bad-model"]["response"]["body"]["error"]["message"]
    assert oai.files.retrieve(done.output_file_id).purpose == "batch_output"

    # OpenAI batches are not Anthropic message batches.
    assert all(b.id != batch.id for b in client.messages.batches.list(limit=100))


def test_cancel(start_server: ServerFactory) -> None:
    server = start_server(
        "--fake-latency-ms", "200", "--fake-capacity", "2", "--poll-interval", "0.05"
    )
    oai = openai_client_for(server)
    file_id = upload(oai, [line(f"c{i}", f"slow {i}") for i in range(30)])
    batch = oai.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = oai.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait_done(oai, batch.id)
    assert done.status == "cancelled" and done.cancelled_at and done.cancelling_at
    assert done.request_counts is not None
    assert done.request_counts.completed + done.request_counts.failed == 30
    errors = jsonl(oai, done.error_file_id or "")
    cancelled = [
        x for x in errors.values() if x["error"] and x["error"]["code"] == "batch_cancelled"
    ]
    assert len(cancelled) == done.request_counts.failed > 0


def test_list_pages_and_workspaces(oai: openai.OpenAI, server: Server) -> None:
    file_id = upload(oai, [line("a", "hello")])
    made = [
        oai.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(3)
    ]
    page = oai.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2] and page.has_more
    rest = oai.batches.list(limit=2, after=made[1])
    assert made[0] in [b.id for b in rest.data]
    assert [b.id for b in oai.batches.list(limit=100)][:3] == made[::-1]

    key = workspace_key(server, "oai-other")
    other = openai_client_for(server, api_key=key)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(made[0])
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(made[0])
    assert made[0] not in [b.id for b in other.batches.list()]
    with pytest.raises(openai.BadRequestError) as foreign_file:
        other.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert foreign_file.value.param == "input_file_id"


@pytest.mark.parametrize(
    ("bad", "code", "param"),
    [
        ("{not json", "invalid_json_line", None),
        (
            {"method": "POST", "url": "/v1/chat/completions", "body": {}},
            "missing_required_parameter",
            "custom_id",
        ),
        (line("dup", "again"), "duplicate_custom_id", None),
        (line("get", "x", method="GET"), "invalid_method", "method"),
        (line("url", "x", url="/v1/embeddings"), "invalid_url", "url"),
        (
            line("body", "x", body={"model": "claude-test", "messages": []}),
            "invalid_request",
            "body.messages",
        ),
        (line('has"quote', "x"), "invalid_custom_id", "custom_id"),
    ],
)
def test_input_validation_fails_the_batch_naming_the_line(
    oai: openai.OpenAI, bad: Any, code: str, param: str | None
) -> None:
    file_id = upload(oai, [line("dup", "first"), bad, line("ok", "fine")])
    batch = oai.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors is not None and batch.errors.data
    [error] = batch.errors.data
    assert (error.code, error.line, error.param) == (code, 2, param)
    assert oai.batches.retrieve(batch.id).status == "failed"


def test_create_errors(oai: openai.OpenAI) -> None:
    file_id = upload(oai, [line("a", "x")])
    with pytest.raises(openai.BadRequestError) as window:
        oai.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )
    assert window.value.param == "completion_window"
    with pytest.raises(openai.BadRequestError) as missing:
        oai.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert missing.value.param == "input_file_id"
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve("batch_nope")


def test_embeddings_lines_each_end_with_a_clear_error(oai: openai.OpenAI) -> None:
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "text-embedding-3-small", "input": f"text {i}"}}
        for i in range(3)
    ]  # fmt: skip
    batch = oai.batches.create(
        input_file_id=upload(oai, lines), endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_done(oai, batch.id)
    assert done.status == "completed" and done.output_file_id is None
    assert done.request_counts is not None and done.request_counts.failed == 3
    errors = jsonl(oai, done.error_file_id or "")
    assert sorted(errors) == ["e0", "e1", "e2"]
    for entry in errors.values():
        assert entry["response"]["status_code"] == 400
        message = entry["response"]["body"]["error"]["message"]
        assert (
            "no engine here computes embeddings" in message and "text-embedding-3-small" in message
        )


def test_a_body_invalid_beyond_its_envelope_ends_in_the_error_file(oai: openai.OpenAI) -> None:
    """Create checks a body's model and messages; the rest is checked when it runs."""
    wizard = line("wizard", "x")
    wizard["body"]["messages"] = [{"role": "wizard", "content": "abracadabra"}]
    batch = oai.batches.create(
        input_file_id=upload(oai, [line("fine", "hello"), wizard]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = wait_done(oai, batch.id)
    assert done.status == "completed"
    assert list(jsonl(oai, done.output_file_id or "")) == ["fine"]
    [(custom_id, entry)] = jsonl(oai, done.error_file_id or "").items()
    assert custom_id == "wizard" and entry["response"]["status_code"] == 400
    assert "wizard" in entry["response"]["body"]["error"]["message"]


def test_a_responses_batch_answers_response_objects(oai: openai.OpenAI) -> None:
    def ask(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses", "body": body}

    lines = [
        ask("plain", {"model": "claude-test", "input": "Tell me about the sea",
                      "instructions": "Be brief.", "max_output_tokens": 40}),
        ask("items", {"model": "claude-test", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Tell me about the sky"}]},
        ]}),
        ask("builtin", {"model": "claude-test", "input": "x", "tools": [{"type": "web_search"}]}),
    ]  # fmt: skip
    batch = oai.batches.create(
        input_file_id=upload(oai, lines), endpoint="/v1/responses", completion_window="24h"
    )
    done = wait_done(oai, batch.id)
    assert done.status == "completed" and done.endpoint == "/v1/responses"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    out = jsonl(oai, done.output_file_id or "")
    direct = oai.responses.create(
        model="claude-test", input="Tell me about the sea", instructions="Be brief.",
        max_output_tokens=40, store=False,
    )  # fmt: skip
    for custom_id in ("plain", "items"):
        body = out[custom_id]["response"]["body"]
        parsed = Response.model_validate(body)  # what the SDK reads a Response as
        assert parsed.status == "completed" and parsed.output_text
    assert (
        Response.model_validate(out["plain"]["response"]["body"]).output_text == direct.output_text
    )
    error = jsonl(oai, done.error_file_id or "")["builtin"]["response"]
    assert error["status_code"] == 400 and "web_search" in error["body"]["error"]["message"]


def test_a_responses_line_that_cannot_run_in_a_batch_fails_it(oai: openai.OpenAI) -> None:
    body = {"model": "claude-test", "input": "x", "previous_response_id": "resp_1"}
    lines = [{"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": body}]
    batch = oai.batches.create(
        input_file_id=upload(oai, lines), endpoint="/v1/responses", completion_window="24h"
    )
    done = wait_done(oai, batch.id)
    assert done.status == "failed" and done.errors is not None and done.errors.data
    assert done.errors.data[0].param == "body.previous_response_id"
