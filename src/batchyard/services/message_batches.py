"""Message Batches use cases: validate, create, read, list, cancel, delete, results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import msgspec
from typing_extensions import Buffer

from batchyard import ids
from batchyard.clock import Clock, to_datetime, to_datetime_or_none
from batchyard.errors import InvalidRequest, NotFound, RateLimited
from batchyard.services.eta import Eta
from batchyard.services.throughput import Throughput
from batchyard.services.webhooks import WebhookPolicy
from batchyard.store.port import Store
from batchyard.store.records import (
    BatchRecord,
    NewBatch,
    OpenAIBatchRecord,
    QueueFull,
    UnknownCursor,
)
from batchyard.wire import json_limits
from batchyard.wire.batches import (
    MAX_REQUESTS,
    BatchCreateIn,
    BatchEta,
    BatchRequestIn,
    MessageBatch,
    MessageBatchPage,
    ParamsProbe,
    RequestCounts,
)
from batchyard.wire.errors import InvalidParams, format_validation_error
from batchyard.wire.prefix_key import batch_prefix

_body_decoder = msgspec.json.Decoder(BatchCreateIn)
_probe_decoder = msgspec.json.Decoder(ParamsProbe)


def parse_create_body(body: bytes | bytearray) -> list[BatchRequestIn]:
    return parse_create(body).requests


def parse_create(body: bytes | bytearray) -> BatchCreateIn:
    """Decode and check a create body; structural problems raise InvalidRequest naming the index."""
    try:
        parsed = json_limits.decode(_body_decoder, body, walk=False)  # params: in the worker
    except InvalidParams as exc:
        raise InvalidRequest(str(exc)) from None
    except msgspec.ValidationError as exc:
        raise InvalidRequest(format_validation_error(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    requests = parsed.requests
    if not requests:
        raise InvalidRequest("requests: a batch must contain at least one request")
    if len(requests) > MAX_REQUESTS:
        raise InvalidRequest(
            f"requests: a batch holds at most {MAX_REQUESTS:,} requests, got {len(requests):,}"
        )
    _check_unique_custom_ids(requests)
    _probe_params(requests)
    return parsed


def _check_unique_custom_ids(requests: list[BatchRequestIn]) -> None:
    if len({r.custom_id for r in requests}) == len(requests):
        return
    seen: dict[str, int] = {}
    for i, request in enumerate(requests):
        first = seen.setdefault(request.custom_id, i)
        if first != i:
            raise InvalidRequest(
                f"requests.{i}.custom_id: duplicate custom_id {request.custom_id!r}"
                f" (also used by requests.{first}); custom_id must be unique within a batch"
            )


def _probe_params(requests: list[BatchRequestIn]) -> None:
    for i, request in enumerate(requests):
        try:
            probe = _probe_decoder.decode(request.params)
        except msgspec.ValidationError:
            raise InvalidRequest(f"requests.{i}.params: Input should be an object") from None
        if probe.stream is not None and probe.stream is not False:
            raise InvalidRequest(
                f"requests.{i}.params.stream: streaming is not supported in message batches"
            )
        if probe.speed is not None:
            raise InvalidRequest(
                f"requests.{i}.params.speed: fast mode is not supported in message batches"
            )


def _not_found(batch_id: str) -> NotFound:
    return NotFound(f"message_batch {batch_id!r} not found")


class BatchService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        expiry_seconds: float,
        retention_seconds: float,
        public_base_url: str | None = None,
        on_created: Callable[[], None] | None = None,
        webhooks: WebhookPolicy | None = None,
        on_ended: Callable[[BatchRecord], None] | None = None,
        eta: Throughput | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.expiry_seconds = expiry_seconds
        self.retention_seconds = retention_seconds
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.on_created = on_created
        self.webhooks = webhooks or WebhookPolicy()
        self.on_ended = on_ended
        """Told of batches that an API call (a cancel) ended; workers see the rest."""
        self.eta = eta or Throughput(store, clock)
        """The ETAs of running batches (shared with the OpenAI dialect and the dashboard)."""

    async def create(
        self,
        workspace_id: str,
        body: bytes | bytearray,
        *,
        api_key_id: str | None = None,
        queued_limit: int | None = None,
    ) -> MessageBatch:
        """Validate and store a batch; `queued_limit` caps the workspace's unfinished requests."""
        parsed = parse_create(body)
        if parsed.webhook_url is not None:
            self.webhooks.check_url(parsed.webhook_url)
        record = await self.store_batch(
            workspace_id,
            [r.custom_id for r in parsed.requests],
            [r.params for r in parsed.requests],
            api_key_id=api_key_id,
            queued_limit=queued_limit,
            webhook_url=parsed.webhook_url,
        )
        return await self.live(record)

    async def store_batch(
        self,
        workspace_id: str,
        custom_ids: Sequence[str],
        params: Sequence[Buffer],
        *,
        api_key_id: str | None = None,
        queued_limit: int | None = None,
        dialect: str = "anthropic",
        openai: Callable[[str], OpenAIBatchRecord] | None = None,
        webhook_url: str | None = None,
    ) -> BatchRecord:
        """Write a checked batch (either dialect) and wake the worker. `openai(batch_id)`:
        the OpenAI Batch API's record of it, written in the same transaction."""
        now = self.clock.now()
        new = NewBatch(
            id=ids.batch_id(),
            workspace_id=workspace_id,
            created_at=now,
            expires_at=now + self.expiry_seconds,
            archive_at=now + self.retention_seconds,
            api_key_id=api_key_id or None,
            dialect=dialect,
            webhook_url=webhook_url,
            prefix=batch_prefix(params),
        )
        try:
            record = await self.store.create_batch(
                new, custom_ids, params, queued_limit, openai(new.id) if openai else None
            )
        except QueueFull as exc:
            raise RateLimited(
                f"This batch's {len(custom_ids):,} requests would put the workspace over its limit"
                f" of {exc.limit:,} queued batch requests ({exc.queued:,} are still queued);"
                " retry when some have finished",
                retry_after=60,
            ) from None
        if self.on_created:
            self.on_created()
        return record

    async def get(self, workspace_id: str, batch_id: str) -> BatchRecord:
        record = await self.store.get_batch(workspace_id, batch_id)
        if record is None:
            raise _not_found(batch_id)
        return record

    async def retrieve(self, workspace_id: str, batch_id: str) -> MessageBatch:
        return await self.live(await self.get(workspace_id, batch_id))

    async def list(
        self, workspace_id: str, limit: int, after_id: str | None, before_id: str | None
    ) -> MessageBatchPage:
        if after_id is not None and before_id is not None:
            raise InvalidRequest("after_id and before_id cannot both be given")
        try:
            records, has_more = await self.store.list_batches(
                workspace_id, limit, after_id, before_id
            )
        except UnknownCursor as exc:
            which = "before_id" if before_id is not None else "after_id"
            raise InvalidRequest(f"{which}: no message batch with id {exc.args[0]!r}") from None
        etas = await self.eta.of_many(records)
        data = [self.to_wire(r, etas[r.id]) for r in records]
        return MessageBatchPage(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )

    async def cancel(self, workspace_id: str, batch_id: str) -> MessageBatch:
        record = await self.cancel_record(workspace_id, batch_id)
        if record is None:
            raise _not_found(batch_id)
        return await self.live(record)

    async def cancel_record(self, workspace_id: str, batch_id: str) -> BatchRecord | None:
        """Cancel the batch (both dialects' cancel); None if there is no such batch."""
        now = self.clock.now()
        record = await self.store.cancel_batch(workspace_id, batch_id, now)
        if record is not None and record.ended_at == now and self.on_ended:
            self.on_ended(record)  # nothing was in flight: this call ended it
        return record

    async def delete(self, workspace_id: str, batch_id: str) -> str:
        record, deleted = await self.store.delete_batch(workspace_id, batch_id)
        if record is None:
            raise _not_found(batch_id)
        if not deleted:
            raise InvalidRequest(
                f"message_batch {batch_id!r} is still {record.processing_status}; it can be"
                " deleted once processing has ended (cancel it first)"
            )
        return record.id

    async def results(
        self, workspace_id: str, batch_id: str, *, partial: bool = False
    ) -> AsyncIterator[bytes]:
        """The results JSONL. With `partial` (batchyard's addition), the lines of the
        requests finished so far, while the batch still runs."""
        record = await self.get(workspace_id, batch_id)
        if record.archived_at is not None:
            raise NotFound(
                f"The results of message_batch {batch_id!r} were deleted at the end of the"
                " retention period"
            )
        if record.processing_status != "ended" and not partial:
            raise InvalidRequest(
                f"message_batch {batch_id!r} is still {record.processing_status}; results are"
                " available once processing has ended (or ask for ?partial=true)"
            )
        return self.store.result_lines(record)

    def results_url(self, batch_id: str) -> str:
        path = f"/v1/messages/batches/{batch_id}/results"
        return f"{self.public_base_url}{path}" if self.public_base_url else path

    async def live(self, r: BatchRecord) -> MessageBatch:
        """The batch as the API shows it, with its ETA while it runs."""
        return self.to_wire(r, await self.eta.of(r))

    def to_wire(self, r: BatchRecord, eta: Eta | None = None) -> MessageBatch:
        ended = r.processing_status == "ended"
        return MessageBatch(
            id=r.id,
            processing_status=r.processing_status,  # type: ignore[arg-type]
            request_counts=RequestCounts(
                processing=r.processing,
                succeeded=r.succeeded,
                errored=r.errored,
                canceled=r.canceled,
                expired=r.expired,
            ),
            created_at=to_datetime(r.created_at),
            expires_at=to_datetime(r.expires_at),
            ended_at=to_datetime_or_none(r.ended_at),
            cancel_initiated_at=to_datetime_or_none(r.cancel_initiated_at),
            archived_at=to_datetime_or_none(r.archived_at),
            results_url=self.results_url(r.id) if ended else None,
            batchyard_eta=eta_to_wire(eta) if eta is not None and not ended else None,
        )


def eta_to_wire(eta: Eta) -> BatchEta:
    rate = round(eta.rate, 4) if eta.rate is not None else None
    return BatchEta(to_datetime_or_none(eta.ends_at), rate, eta.at_risk)
