"""The in-memory store (`memory://`): the whole store port on plain Python structures,
for tests and trying things. Nothing survives the process.

It follows the SQL stores rule for rule (state guards, the lease guard on an outcome,
counters, ending, fairness, cursors), on the pure rules they share (`store.claims`,
`store.tallies`, `records.created_record`). One process only: no operation awaits in
the middle of a change, so each runs whole before the next (a transaction's worth).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

from typing_extensions import Buffer

from batchyard.store.claims import Claimable, Grouping, claim_in_turn
from batchyard.store.layout import RequestState, batch_of
from batchyard.store.memory_openai import MemoryFiles, MemoryOpenAIBatches, MemoryResponses
from batchyard.store.memory_rows import BatchTable, page, record_of
from batchyard.store.memory_tenancy import MemoryTenancy
from batchyard.store.memory_views import MemoryViews, MemoryWebhooks, MemoryWorkers
from batchyard.store.records import (
    BatchRecord,
    ClaimedRequest,
    HousekeepingReport,
    NewBatch,
    OpenAIBatchRecord,
    Outcome,
    QueueFull,
    RecordReport,
    created_record,
)
from batchyard.store.tallies import usage_rows, usage_sums


class MemoryStore:
    def __init__(self) -> None:
        self._batches = BatchTable()
        self.tenancy = MemoryTenancy()
        self.files = MemoryFiles()
        self.openai_batches = MemoryOpenAIBatches(self._batches)
        self.views = MemoryViews(self._batches, self.openai_batches)
        self.workers = MemoryWorkers()
        self.webhooks = MemoryWebhooks(self._batches)
        self.responses = MemoryResponses()
        self._turn = 0

    # --- lifecycle --------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to connect to: once made, the store holds what a new database does
        (the default workspace)."""

    async def close(self) -> None:
        """Nothing to release; what is stored stays until the store is dropped."""

    async def open_counts(self) -> tuple[int, int]:
        open_batches = [b for b in self._batches.by_seq.values() if not b.ended]
        return len(open_batches), sum(b.processing for b in open_batches)

    # --- batches ----------------------------------------------------------------

    async def create_batch(
        self,
        batch: NewBatch,
        custom_ids: Sequence[str],
        params: Sequence[Buffer],
        queued_limit: int | None = None,
        openai: OpenAIBatchRecord | None = None,
    ) -> BatchRecord:
        n = len(custom_ids)
        assert len(params) == n
        if queued_limit is not None:
            queued = sum(
                b.processing
                for b in self._batches.by_seq.values()
                if b.workspace_id == batch.workspace_id and not b.ended
            )
            if queued + n > queued_limit:
                raise QueueFull(queued_limit, queued)
        if openai is not None:
            self.openai_batches.check_new(openai)  # before anything is written
        created = self._batches.add(batch, custom_ids, (bytes(p) for p in params))
        if openai is not None:
            self.openai_batches.insert(openai)
        return created_record(created.seq, batch, n)

    async def get_batch(self, workspace_id: str, batch_id: str) -> BatchRecord | None:
        return record_of(self._batches.get(workspace_id, batch_id))

    async def list_batches(
        self, workspace_id: str, limit: int, after_id: str | None, before_id: str | None
    ) -> tuple[list[BatchRecord], bool]:
        """The Anthropic dialect's batches, newest first (OpenAI ones are listed by theirs)."""
        rows = [
            b
            for b in self._batches.by_seq.values()
            if b.workspace_id == workspace_id and b.new.dialect == "anthropic"
        ]
        got, more = page(rows, lambda b: b.id, limit, after_id, before_id)
        return [b.record() for b in got], more

    async def cancel_batch(
        self, workspace_id: str, batch_id: str, now: float
    ) -> BatchRecord | None:
        batch = self._batches.get(workspace_id, batch_id)
        if batch is None or batch.processing_status != "in_progress":
            return record_of(batch)
        batch.processing_status, batch.cancel_initiated_at = "canceling", now
        batch.finish_unclaimed(RequestState.CANCELED, now)
        batch.end_if_done(now)
        return batch.record()

    async def delete_batch(
        self, workspace_id: str, batch_id: str
    ) -> tuple[BatchRecord | None, bool]:
        batch = self._batches.get(workspace_id, batch_id)
        if batch is None or not batch.ended:
            return record_of(batch), False
        self._batches.remove(batch)
        return batch.record(), True

    async def result_lines(self, batch: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        start = 0
        while True:
            # One page a step, as the SQL stores read them (others may write in between).
            found = self._batches.by_seq.get(batch.seq)
            rows = found.requests[start : start + page_size] if found is not None else []
            lines = [line for r in rows if (line := r.line()) is not None]
            if lines:
                yield b"\n".join(lines) + b"\n"
            if len(rows) < page_size:
                return
            start += page_size

    # --- scheduling -------------------------------------------------------------

    async def claim_requests(
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        limit: int,
        grouping: Grouping | None = None,
    ) -> list[ClaimedRequest]:
        turn = self._turn  # every claim takes a turn, as in the SQL stores
        self._turn += 1
        batches = [
            Claimable(b.seq, b.workspace_id, b.new.prefix, b.new.expires_at)
            for b in self._batches.by_seq.values()
            if b.processing_status == "in_progress" and b.new.expires_at > now and b.claimable(now)
        ]

        async def claim_pass(wants: list[tuple[int, int]]) -> list[ClaimedRequest]:
            taken: list[ClaimedRequest] = []
            for seq, want in wants:
                taken += self._batches.by_seq[seq].claim(worker_id, now, now + lease_seconds, want)
            return taken

        return await claim_in_turn(batches, limit, turn, grouping, now, claim_pass)

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        finals = [o for o in outcomes if o.state != RequestState.QUEUED]
        retries = [o for o in outcomes if o.state == RequestState.QUEUED]
        finished = [o for o in finals if self._apply(worker_id, o, now)]
        requeued = [o for o in retries if self._apply(worker_id, o, now)]
        sums = usage_sums(finished)
        owners = {
            seq: (b.workspace_id, b.new.api_key_id or "")
            for seq, _ in sums
            if (b := self._batches.by_seq.get(seq)) is not None
        }
        self.tenancy.count(usage_rows(sums, owners, now))
        # A request sent back for retry in a batch that is being canceled is
        # canceled instead: it was never sent to the model successfully.
        retried = {batch_of(o.key) for o in requeued}
        for seq in sorted(retried):
            batch = self._batches.by_seq[seq]
            if batch.processing_status == "canceling":
                batch.finish_unclaimed(RequestState.CANCELED, now)
        recorded = len(finished) + len(requeued)
        touched = {batch_of(o.key) for o in finished} | retried
        return RecordReport(
            recorded=recorded,
            stale=len(outcomes) - recorded,
            ended_batches=self._end_if_done(touched, now),
            applied=finished + requeued,
        )

    def _apply(self, worker_id: str, o: Outcome, now: float) -> bool:
        """Write one outcome if this worker still holds the request's lease."""
        found = self._batches.request(o.key)
        if found is None:
            return False
        batch, r = found
        if r.state != RequestState.CLAIMED or r.worker != worker_id or r.attempts != o.attempts:
            return False
        if o.state == RequestState.QUEUED:
            r.available_at = o.available_at
            batch.enqueue(r)
        else:
            batch.finish(r, o.state, now, o.line)
        return True

    async def extend_leases(self, worker_id: str, keys: Sequence[int], lease_until: float) -> None:
        for key in keys:
            found = self._batches.request(key)
            if found is not None:
                _, r = found
                if r.state == RequestState.CLAIMED and r.worker == worker_id:
                    r.lease_until = lease_until

    async def housekeeping(self, now: float) -> HousekeepingReport:
        report = HousekeepingReport()
        batches = list(self._batches.by_seq.values())
        report.reclaimed = sum(b.reclaim(now) for b in batches)
        touched: list[int] = []
        for b in batches:
            if b.ended:
                continue
            if b.new.expires_at <= now:
                report.expired_requests += b.finish_unclaimed(
                    RequestState.EXPIRED, now, include_claimed=True
                )
            elif b.processing_status == "canceling":
                b.finish_unclaimed(RequestState.CANCELED, now)
            touched.append(b.seq)
        report.ended_batches = self._end_if_done(touched, now)
        for b in batches:
            if b.archived_at is None and b.new.archive_at <= now and b.ended:
                b.archive(now)
                report.archived_batches.append(b.id)
        return report

    def _end_if_done(self, seqs: Iterable[int], now: float) -> list[str]:
        """End the batches among `seqs` with nothing left to process; their ids."""
        batches = (self._batches.by_seq.get(seq) for seq in sorted(seqs))
        return [b.id for b in batches if b is not None and b.end_if_done(now)]
