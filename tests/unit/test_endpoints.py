"""The route table: every endpoint found by method and path, with what admission, the
error shape and the OpenAPI document read of it."""

from __future__ import annotations

from batchyard.api.endpoints import Endpoint, Table
from batchyard.api.routes import TABLE


def test_endpoints_are_found_by_method_and_path() -> None:
    create = TABLE.find("POST", "/v1/messages/batches")
    assert create is not None and create.rate == "batch" and create.version
    retrieve = TABLE.find("GET", "/v1/messages/batches/msgbatch_01abc")
    assert retrieve is not None and retrieve.path == "/v1/messages/batches/{batch_id}"
    model = TABLE.find("GET", "/v1/models/claude-3/with-slash")
    assert model is not None and not model.version  # /v1/models needs no anthropic-version
    assert TABLE.find("GET", "/v1/nothing-here") is None
    wrong_method = TABLE.find("PUT", "/v1/messages")
    assert wrong_method is not None and wrong_method.method == "POST"  # answered as a 405
    assert wrong_method.rate is None  # which costs no rate-limit allowance


def test_who_may_call_and_the_rate_groups() -> None:
    admin = TABLE.find("GET", "/v1/organizations/workspaces")
    unoffered = TABLE.find("DELETE", "/v1/organizations/invites/x")
    assert admin is not None and admin.access == "admin"
    assert unoffered is not None and unoffered.access == "admin"
    for method, path in (
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/v1/complete"),
        ("POST", "/v1/chat/completions"),
    ):
        endpoint = TABLE.find(method, path)
        assert endpoint is not None and endpoint.rate == "messages", path
    for method, path in (("GET", "/v1/batches"), ("POST", "/v1/files"), ("GET", "/v1/files/f")):
        endpoint = TABLE.find(method, path)
        assert endpoint is not None and endpoint.rate == "batch", path
    models = TABLE.find("GET", "/v1/models")
    assert models is not None and models.rate is None and models.access == "workspace"


def test_the_error_shape_follows_the_dialect() -> None:
    anthropic = {"anthropic-version": "2023-06-01"}
    assert (
        TABLE.dialect(TABLE.find("POST", "/v1/chat/completions"), "/v1/chat/completions", {})
        == "openai"
    )
    assert TABLE.dialect(TABLE.find("GET", "/v1/files"), "/v1/files", {}) == "openai"
    assert TABLE.dialect(TABLE.find("GET", "/v1/files"), "/v1/files", anthropic) == "anthropic"
    assert TABLE.dialect(TABLE.find("POST", "/v1/messages"), "/v1/messages", {}) == "anthropic"
    assert (
        TABLE.dialect(TABLE.find("POST", "/v1/embeddings"), "/v1/embeddings", {}) == "openai"
    )  # served by none
    # a /v1/ path outside the Anthropic API, without anthropic-version: OpenAI's shape
    # (the application's table has "/" and the dashboard too: not prefixes of the API)
    table = Table([Endpoint("GET", "/", TABLE.endpoints[0].handler), *TABLE.endpoints])
    assert table.dialect(None, "/v1/moderations", {}) == "openai"
    for path in ("/v1/unknown", "/v1/moderations", "/v1/audio/speech"):
        assert TABLE.dialect(TABLE.find("POST", path), path, {}) == "openai", path
        assert TABLE.dialect(TABLE.find("POST", path), path, anthropic) == "anthropic", path
    for path in ("/v1/messages/nope", "/v1/organizations/users", "/v1/skills", "/unknown"):
        assert TABLE.dialect(TABLE.find("GET", path), path, {}) == "anthropic", path
