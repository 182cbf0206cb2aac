"""The cost report against a real server: a priced routing table, a batch and calls on the
fake engine, and the report's sums equal to the usage report's tokens x the prices."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerFactory, client_for, make_requests
from tests.serverproc import HEADERS

CONFIG = """
[[engines]]
kind = "fake"
models = [
  { id = "claude-test", display_name = "Claude Test", prices = { input = 3.0, output = 15.0, batch_discount = 0.5 } },
  { id = "claude-free" },
]
"""


def report(base_url: str, path: str, **params: Any) -> dict[str, Any]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    r = httpx.get(
        f"{base_url}/v1/organizations/{path}",
        headers=HEADERS,
        params={
            "starting_at": today.isoformat(),
            "ending_at": (today + timedelta(days=1)).isoformat(),
            **params,
        },
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_costs_are_the_usage_times_the_prices(start_server: ServerFactory, tmp_path: Path) -> None:
    config = tmp_path / "routing.toml"
    config.write_text(CONFIG)
    server = start_server("--config", str(config))
    client = client_for(server)
    batch = client.messages.batches.create(requests=make_requests(5, "c"))  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline, "batch did not end"
        time.sleep(0.05)
    for model in ("claude-test", "claude-free"):
        client.messages.create(
            model=model, max_tokens=20, messages=[{"role": "user", "content": "cost me"}]
        )

    usage = report(
        server.base_url, "usage_report/messages", **{"group_by[]": ["service_tier", "model"]}
    )
    [day] = usage["data"]
    expected = Decimal(0)
    for row in day["results"]:
        if row["model"] != "claude-test":
            continue
        discount = Decimal("0.5") if row["service_tier"] == "batch" else Decimal(1)
        usd = Decimal(row["uncached_input_tokens"]) * 3 + Decimal(row["output_tokens"]) * 15
        expected += usd / 1_000_000 * 100 * discount  # in cents
    assert expected > 0

    costs = report(server.base_url, "cost_report")
    [cost_day] = costs["data"]
    [total] = cost_day["results"]
    assert total["currency"] == "USD" and total["description"] is None
    assert Decimal(total["amount"]) == expected
    assert "claude-free" in str(costs["batchyard_note"])

    described = report(server.base_url, "cost_report", **{"group_by[]": ["description"]})
    [items_day] = described["data"]
    items = items_day["results"]
    assert sum(Decimal(i["amount"]) for i in items) == expected
    assert {(i["service_tier"], i["token_type"]) for i in items} == {
        ("batch", "uncached_input_tokens"),
        ("batch", "output_tokens"),
        ("standard", "uncached_input_tokens"),
        ("standard", "output_tokens"),
    }
    assert "Claude Test Usage - Output Tokens" in {i["description"] for i in items}

    workspace_key = httpx.get(
        f"{server.base_url}/v1/organizations/cost_report",
        headers={**HEADERS, "x-api-key": "sk-not-an-admin-key"},
        params={"starting_at": "2026-11-01T00:00:00Z"},
    )
    assert workspace_key.status_code == 401


def test_without_prices_the_report_is_empty_and_says_why(start_server: ServerFactory) -> None:
    server = start_server()
    client = client_for(server)
    client.messages.create(
        model="claude-test", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    costs = report(server.base_url, "cost_report")
    [day] = costs["data"]
    assert day["results"] == [] and costs["has_more"] is False
    assert "No model in the routing table has prices" in str(costs["batchyard_note"])
