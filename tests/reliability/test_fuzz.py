"""Fuzz the HTTP API from its own OpenAPI document (schemathesis): whatever arrives,
the answer is never a 500 and never shows a traceback, and it has the error shape.
Bounded: a fixed number of generated cases per operation, no deadline per case."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.openapi.checks import JsonSchemaError

from batchyard.api.routes import TABLE
from tests.databases import new_database
from tests.serverproc import HEADERS, Server


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d: Path = tmp_path_factory.mktemp("fuzz")
    server = Server(new_database(d, "fuzz"), d / "server.log", ["--poll-interval", "0.05"])
    yield server
    server.stop()


def check(case: schemathesis.Case[Any], server: Server) -> None:
    response = case.call(base_url=server.base_url, headers=HEADERS, timeout=30)
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500 or response.status_code == 503, (
        f"{where}: {response.status_code} {response.text[:500]}"
    )
    assert "Traceback" not in response.text, where
    if response.status_code >= 400:
        body = response.json()
        endpoint = TABLE.find(case.method.upper(), case.path)
        if TABLE.dialect(endpoint, case.path, HEADERS) == "anthropic":
            assert body["type"] == "error", (where, body)
        assert {"type", "message"} <= set(body["error"]), (where, body)
    else:
        # Successful answers match the document (the same structs encode them).
        try:
            case.validate_response(
                response, checks=[schemathesis.checks.response_schema_conformance]
            )
        except JsonSchemaError as exc:
            raise AssertionError(f"{where}: {exc}") from None


def test_no_input_breaks_the_api(fuzzed_server: Server) -> None:
    api = schemathesis.openapi.from_url(f"{fuzzed_server.base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 27

    for operation, mode in itertools.product(operations, list(schemathesis.GenerationMode)):
        # Positive cases follow the document; negative ones break it on purpose.

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def fuzz(case: schemathesis.Case[Any]) -> None:
            check(case, fuzzed_server)

        fuzz()
