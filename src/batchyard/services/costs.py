"""The cost report: the usage counters times the prices of the routing table.

The shape and parameters are the hosted Admin API's `GET /v1/organizations/cost_report`
(daily buckets, `group_by` workspace_id and description, amounts in cents as decimal
strings). Prices are per model in the routing table (`prices = { input = …, output = … }`,
USD per million tokens); batch results cost the model's `batch_discount` of that. Usage of
a model without prices is left out, and the report says so (`batchyard_note`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from batchyard.clock import Clock
from batchyard.engines.config import ModelConfig
from batchyard.errors import InvalidRequest
from batchyard.services.usage import Window, bucket_bounds, report_window
from batchyard.store.port import TenancyStore
from batchyard.store.records import UsageRow
from batchyard.wire.admin import CostBucket, CostReport, CostResult

GROUPS = ("workspace_id", "description")
TOKEN_LABELS = {
    "uncached_input_tokens": "Input Tokens",
    "output_tokens": "Output Tokens",
    "cache_read_input_tokens": "Cache Read Input Tokens",
    "cache_creation.ephemeral_5m_input_tokens": "Cache Write (5m) Input Tokens",
    "cache_creation.ephemeral_1h_input_tokens": "Cache Write (1h) Input Tokens",
}
"""The usage report's token types, and how a cost item's description names each."""
_CENTS_PER_MILLION = Decimal(100) / Decimal(1_000_000)
_PLACES = Decimal("0.000001")

ModelLookup = Callable[[str], ModelConfig | None]


@dataclass(slots=True)
class CostQuery:
    starting_at: str
    ending_at: str | None = None
    bucket_width: str = "1d"
    group_by: Sequence[str] = ()
    limit: int | None = None
    page: str | None = None


def token_counts(row: UsageRow) -> dict[str, int]:
    """A usage row's tokens by the token types of `TOKEN_LABELS`."""
    return {
        "uncached_input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_input_tokens": row.cache_read_input_tokens,
        "cache_creation.ephemeral_5m_input_tokens": row.cache_creation_5m_input_tokens,
        "cache_creation.ephemeral_1h_input_tokens": row.cache_creation_1h_input_tokens,
    }


class CostService:
    def __init__(
        self, store: TenancyStore, models: ModelLookup, clock: Clock, *, priced: bool
    ) -> None:
        self.store = store
        self.models = models
        self.clock = clock
        self.priced = priced
        """Whether any model of the routing table has prices."""

    async def report(self, q: CostQuery) -> CostReport:
        if q.bucket_width != "1d":
            raise InvalidRequest(f"bucket_width: {q.bucket_width!r} is not available; use 1d")
        for name in q.group_by:
            if name not in GROUPS:
                raise InvalidRequest(f"group_by: {name!r} is not one of {', '.join(GROUPS)}")
        window = report_window(q.starting_at, q.ending_at, q.bucket_width, q.limit, q.page)
        rows = await self.store.usage(window.start, window.end)
        sums: dict[int, dict[tuple[str | None, ...], Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        unpriced: set[str] = set()
        for row in rows:
            config = self.models(row.model)
            if config is None or config.prices is None:
                unpriced.add(row.model)
                continue
            prices = config.prices
            discount = Decimal(str(prices.batch_discount)) if row.service_tier == "batch" else 1
            bucket = sums[(row.bucket - window.start) // window.width]
            counts = token_counts(row)
            for token_type, price in prices.per_million().items():
                count = counts[token_type]
                if count:
                    key = _group(row, config, token_type, q.group_by)
                    bucket[key] += count * Decimal(str(price)) * _CENTS_PER_MILLION * discount
        return CostReport(
            data=_buckets(sums, window, q.group_by),
            has_more=window.next_page is not None,
            next_page=window.next_page,
            batchyard_note=self._note(unpriced),
        )

    def _note(self, unpriced: set[str]) -> str | None:
        if not self.priced:
            return (
                "No model in the routing table has prices, so there are no costs to report:"
                " add `prices = { input = …, output = … }` (USD per million tokens) to the"
                " models in --config"
            )
        if not unpriced:
            return None
        return (
            f"Usage of {', '.join(sorted(unpriced))} is not in this report: the routing"
            " table gives no prices for it (add `prices = { input = …, output = … }`, USD per"
            " million tokens, to the model in --config)"
        )


def _group(
    row: UsageRow, config: ModelConfig, token_type: str, group_by: Sequence[str]
) -> tuple[str | None, ...]:
    """(workspace_id, description, model, service_tier, token_type), None where not grouped."""
    workspace = row.workspace_id if "workspace_id" in group_by else None
    if "description" not in group_by:
        return (workspace, None, None, None, None)
    name = config.display_name or row.model
    description = f"{name} Usage - {TOKEN_LABELS[token_type]}"
    return (workspace, description, row.model, row.service_tier, token_type)


def _buckets(
    sums: dict[int, dict[tuple[str | None, ...], Decimal]],
    window: Window,
    group_by: Sequence[str],
) -> list[CostBucket]:
    buckets = []
    for i, (lo, hi) in enumerate(bucket_bounds(window)):
        results = []
        for key, cents in sorted(sums.get(i, {}).items(), key=lambda kv: repr(kv[0])):
            workspace, description, model, tier, token_type = key
            described = "description" in group_by
            results.append(
                CostResult(
                    amount=_amount(cents),
                    workspace_id=workspace,
                    description=description,
                    cost_type="tokens" if described else None,
                    context_window="0-200k" if described else None,
                    model=model,
                    service_tier=tier,
                    token_type=token_type,
                )
            )
        buckets.append(CostBucket(lo, hi, results))
    return buckets


def _amount(cents: Decimal) -> str:
    """Cents as the hosted report writes them: a decimal string, no exponent."""
    text = format(cents.quantize(_PLACES).normalize(), "f")
    return text if text != "-0" else "0"
