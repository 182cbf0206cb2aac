"""The cost report on the memory store: usage counters x the routing table's prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from batchyard.clock import ManualClock
from batchyard.engines.config import ModelConfig, ModelPrices
from batchyard.errors import InvalidRequest
from batchyard.services.costs import CostQuery, CostService
from batchyard.store import open_store
from batchyard.store.memory import MemoryStore
from batchyard.store.records import UsageRow

pytestmark = pytest.mark.anyio
DAY0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp())
DAY = 86400
PRICED = ModelConfig(
    "claude-test", display_name="Claude Test", prices=ModelPrices(input=3.0, output=15.0)
)
MODELS = {"claude-test": PRICED, "claude-free": ModelConfig("claude-free")}


def row(
    bucket: int,
    tier: str = "standard",
    *,
    model: str = "claude-test",
    workspace: str = "ws_a",
    tokens: tuple[int, int, int, int, int] = (1000, 200, 0, 0, 0),
) -> UsageRow:
    return UsageRow(bucket, workspace, "key_1", model, tier, 1, *tokens)


async def service(*rows: UsageRow) -> CostService:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    await store.tenancy.add_usage(rows)
    return CostService(store.tenancy, MODELS.get, ManualClock(DAY0 + 3 * DAY), priced=True)


def query(days: int = 3, **kwargs: object) -> CostQuery:
    start = datetime.fromtimestamp(DAY0, UTC).isoformat()
    end = datetime.fromtimestamp(DAY0 + days * DAY, UTC).isoformat()
    return CostQuery(starting_at=start, ending_at=end, **kwargs)  # type: ignore[arg-type]


def cents(n_tokens: int, usd_per_million: float, discount: float = 1.0) -> Decimal:
    return Decimal(n_tokens) * Decimal(str(usd_per_million)) / 10_000 * Decimal(str(discount))


async def test_daily_totals_are_usage_times_prices_with_the_batch_discount() -> None:
    costs = await service(
        row(DAY0 + 3600),
        row(DAY0 + 7200, "batch"),
        row(DAY0 + DAY + 60, tokens=(10, 0, 0, 0, 0)),
    )
    report = await costs.report(query())
    assert [len(b.results) for b in report.data] == [1, 1, 0]
    day1 = cents(1000, 3) + cents(200, 15) + cents(1000, 3, 0.5) + cents(200, 15, 0.5)
    assert Decimal(report.data[0].results[0].amount) == day1
    # $3/M x 1000 = 0.3 cents, $15/M x 200 = 0.3 cents; the batch's half of that again.
    assert report.data[0].results[0].amount == "0.9"
    assert Decimal(report.data[1].results[0].amount) == cents(10, 3)
    assert report.data[1].results[0].amount == "0.003"
    assert report.batchyard_note is None and report.has_more is False
    assert report.data[0].results[0].description is None
    assert report.data[0].starting_at == datetime.fromtimestamp(DAY0, UTC)


async def test_grouped_by_description_each_token_type_is_an_item() -> None:
    costs = await service(row(DAY0, "batch", tokens=(1000, 200, 500, 100, 40)))
    report = await costs.report(query(1, group_by=["workspace_id", "description"]))
    items = {r.token_type: r for r in report.data[0].results}
    assert set(items) == {
        "uncached_input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation.ephemeral_5m_input_tokens",
        "cache_creation.ephemeral_1h_input_tokens",
    }
    # Cache prices default to the hosted multiples of the input price.
    assert Decimal(items["cache_read_input_tokens"].amount) == cents(500, 0.3, 0.5)
    assert Decimal(items["cache_creation.ephemeral_5m_input_tokens"].amount) == cents(
        100, 3.75, 0.5
    )
    assert Decimal(items["cache_creation.ephemeral_1h_input_tokens"].amount) == cents(40, 6, 0.5)
    out = items["output_tokens"]
    assert out.description == "Claude Test Usage - Output Tokens"
    assert (out.workspace_id, out.model, out.service_tier, out.cost_type) == (
        "ws_a",
        "claude-test",
        "batch",
        "tokens",
    )
    assert out.currency == "USD"


async def test_workspaces_are_apart_when_grouped() -> None:
    costs = await service(row(DAY0), row(DAY0, workspace="ws_b", tokens=(0, 100, 0, 0, 0)))
    ungrouped = await costs.report(query(1))
    assert [r.workspace_id for r in ungrouped.data[0].results] == [None]
    grouped = await costs.report(query(1, group_by=["workspace_id"]))
    amounts = {r.workspace_id: Decimal(r.amount) for r in grouped.data[0].results}
    assert amounts == {"ws_a": cents(1000, 3) + cents(200, 15), "ws_b": cents(100, 15)}
    assert sum(amounts.values()) == Decimal(ungrouped.data[0].results[0].amount)


async def test_unpriced_models_are_left_out_and_named() -> None:
    costs = await service(row(DAY0, model="claude-free"), row(DAY0, model="gone-model"))
    report = await costs.report(query(1))
    assert report.data[0].results == []
    assert report.batchyard_note is not None
    assert "claude-free, gone-model" in report.batchyard_note and "prices" in report.batchyard_note


async def test_with_no_prices_at_all_an_empty_report_says_why() -> None:
    store = open_store("memory://")
    costs = CostService(store.tenancy, lambda _: None, ManualClock(DAY0), priced=False)
    report = await costs.report(query(2))
    assert [b.results for b in report.data] == [[], []]
    assert report.batchyard_note is not None
    assert report.batchyard_note.startswith("No model in the routing table has prices")


async def test_pages_and_bad_parameters() -> None:
    costs = await service(*(row(DAY0 + d * DAY) for d in range(10)))
    first = await costs.report(query(10, limit=7))
    assert len(first.data) == 7 and first.has_more and first.next_page
    rest = await costs.report(query(10, limit=7, page=first.next_page))
    assert len(rest.data) == 3 and not rest.has_more
    for bad, message in [
        (query(bucket_width="1h"), "bucket_width"),
        (query(group_by=["model"]), "group_by"),
        (query(limit=32), "limit"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            await costs.report(bad)
