"""The PostgreSQL store: many API and worker processes on one database, no coordinator.

- Claims take `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's rows.
- Outcomes are written per flush in one statement over arrays (`unnest`), whose
  `RETURNING` says which leases were still held; counters move in the same
  transaction, batch rows locked in `seq` order so flushes cannot deadlock.
- A batch's requests arrive by binary COPY in the transaction that creates it.
- Housekeeping runs in one worker at a time (a transaction-level advisory lock).
- Lost connections, a restarting server, a full disk or a read-only database
  surface as StoreUnavailable (503 from the API; the worker loops retry), and the
  pool reconnects when the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
from typing_extensions import Buffer

from batchyard.errors import InvalidRequest, StoreUnavailable
from batchyard.store import migrations
from batchyard.store.claims import fair_order, shares, still_full
from batchyard.store.layout import COUNTER, KEY_BITS, RequestState, key_range
from batchyard.store.openai_batches_sql import SqlOpenAIBatches
from batchyard.store.records import (
    BatchRecord,
    ClaimedRequest,
    HousekeepingReport,
    NewBatch,
    OpenAIBatchRecord,
    Outcome,
    QueueFull,
    RecordReport,
    UsageRow,
    created_record,
)
from batchyard.store.shared import SharedSql
from batchyard.store.sql import (
    BATCH_COLUMNS,
    USAGE_UPSERT,
    Row,
    Statement,
    batch_record,
    result_line,
    usage_params,
)
from batchyard.store.tallies import usage_rows, usage_sums

T = TypeVar("T")
log = logging.getLogger("batchyard.store")
if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
else:
    Conn = asyncpg.pool.PoolConnectionProxy

_MIGRATION_LOCK = 0x6261_7463_6879_01  # "batchy" + 1
_HOUSEKEEPING_LOCK = 0x6261_7463_6879_02
_RETRY_STATES = {"40001", "40P01"}  # serialization failure, deadlock: run the transaction again
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")  # connection, resources (disk full), shutdown, I/O
# read-only transaction (a standby, or default_transaction_read_only)
_UNAVAILABLE_STATES = {"25006"}
_UNSTORABLE_TEXT = {"22021", "22P05"}  # character not in repertoire, untranslatable


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """`?` placeholders (the shared SQL) as PostgreSQL's `$1`, `$2`…"""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith(_UNAVAILABLE_CLASSES) or state in _UNAVAILABLE_STATES
    return isinstance(exc, (asyncpg.InterfaceError, OSError, ConnectionError, TimeoutError))


class PostgresStore(SharedSql):
    def __init__(self, url: str, *, synchronous: str = "NORMAL", pool_size: int = 10) -> None:
        self.url = url
        self.synchronous = synchronous
        self.pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._rr = 0
        super().__init__()

    # --- plumbing ---------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        assert self._pool is not None, "store is not open"
        return self._pool

    async def _call(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn` on a pooled connection; store failures become StoreUnavailable."""
        try:
            async with self.pool.acquire() as conn:
                return await fn(conn)
        except Exception as exc:
            if _unavailable(exc):
                raise StoreUnavailable(f"The store is unavailable ({exc}); try again") from exc
            if isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _UNSTORABLE_TEXT:
                # A NUL character (legal in JSON, not in PostgreSQL text): the caller's input.
                raise InvalidRequest(f"A text value cannot be stored: {exc}") from None
            raise

    async def _transaction(self, fn: Callable[[Conn], Awaitable[T]], *, durable: bool = False) -> T:
        """Run `fn` in one transaction, again if PostgreSQL aborted it for a deadlock
        or a serialization conflict. `durable` ones (what the API accepts) wait for
        the commit's fsync; the worker's follow `synchronous` (NORMAL: not waited
        for, so a database crash may make the last finished requests run again)."""

        async def run(conn: Conn) -> T:
            for attempt in range(5):
                try:
                    async with conn.transaction():
                        if not durable and self.synchronous != "FULL":
                            await conn.execute("SET LOCAL synchronous_commit = off")
                        return await fn(conn)
                except asyncpg.PostgresError as exc:
                    if exc.sqlstate not in _RETRY_STATES or attempt == 4:
                        raise
                    await asyncio.sleep(0.01 * 2**attempt)
            raise AssertionError("unreachable")

        return await self._call(run)

    # --- the SqlRunner port -------------------------------------------------------

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        row = await self._call(lambda c: c.fetchrow(numbered(sql), *params))
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        rows = await self._call(lambda c: c.fetch(numbered(sql), *params))
        return [tuple(r) for r in rows]

    async def write(self, *statements: Statement, durable: bool = True) -> list[Row | None]:
        async def run(conn: Conn) -> list[Row | None]:
            out: list[Row | None] = []
            for sql, params in statements:
                row = await conn.fetchrow(numbered(sql), *params)
                out.append(tuple(row) if row is not None else None)
            return out

        return await self._transaction(run, durable=durable)

    # --- lifecycle --------------------------------------------------------------

    async def open(self, wait_seconds: float = 60.0) -> None:
        """Connect (waiting up to `wait_seconds` for a server that is still starting, as
        in a compose file or after a failover) and run pending migrations."""
        deadline = time.monotonic() + wait_seconds
        delay = 0.2
        while True:
            try:
                self._pool = await asyncpg.create_pool(
                    self.url, min_size=1, max_size=self.pool_size, command_timeout=60
                )
                break
            except Exception as exc:
                if not _unavailable(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(f"Cannot reach PostgreSQL ({exc})") from exc
                log.warning("PostgreSQL not reachable yet (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self._call(self._migrate)

    async def _migrate(self, conn: Conn) -> None:
        # Many processes may start at once: one migrates, the others wait and see it done.
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in migrations.load("postgresql"):
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        time.time(),
                    )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def close(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 10)
            self._pool = None

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

        async def run(conn: Conn) -> BatchRecord:
            if queued_limit is not None:
                # One create at a time per workspace, so two cannot both pass the check.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", batch.workspace_id)
                queued = await conn.fetchval(
                    "SELECT coalesce(sum(processing), 0) FROM batches"
                    " WHERE workspace_id = $1 AND processing_status != 'ended'",
                    batch.workspace_id,
                )
                if queued + n > queued_limit:
                    raise QueueFull(queued_limit, int(queued))
            seq = await conn.fetchval(
                "INSERT INTO batches (id, workspace_id, api_key_id, dialect, processing_status,"
                " created_at, expires_at, archive_at, total, processing, webhook_url)"
                " VALUES ($1, $2, $3, $8, 'in_progress', $4, $5, $6, $7, $7, $9) RETURNING seq",
                batch.id,
                batch.workspace_id,
                batch.api_key_id,
                batch.created_at,
                batch.expires_at,
                batch.archive_at,
                n,
                batch.dialect,
                batch.webhook_url,
            )
            base = seq << KEY_BITS
            await conn.copy_records_to_table(
                "requests",
                records=(
                    (base + i, seq, cid, bytes(p))
                    for i, (cid, p) in enumerate(zip(custom_ids, params, strict=True))
                ),
                columns=("key", "batch_seq", "custom_id", "params"),
            )
            if openai is not None:
                sql, values = SqlOpenAIBatches.insert(openai)
                await conn.execute(numbered(sql), *values)
            return created_record(seq, batch, n)

        return await self._transaction(run, durable=True)

    async def get_batch(self, workspace_id: str, batch_id: str) -> BatchRecord | None:
        return await self._call(lambda c: self._get_batch(c, workspace_id, batch_id))

    @staticmethod
    async def _get_batch(
        conn: Conn, workspace_id: str, batch_id: str, *, lock: bool = False
    ) -> BatchRecord | None:
        row = await conn.fetchrow(
            f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1 AND workspace_id = $2"
            + (" FOR UPDATE" if lock else ""),
            batch_id,
            workspace_id,
        )
        return batch_record(tuple(row)) if row is not None else None

    async def cancel_batch(
        self, workspace_id: str, batch_id: str, now: float
    ) -> BatchRecord | None:
        async def run(conn: Conn) -> BatchRecord | None:
            batch = await self._get_batch(conn, workspace_id, batch_id, lock=True)
            if batch is None or batch.processing_status != "in_progress":
                return batch
            await conn.execute(
                "UPDATE batches SET processing_status = 'canceling', cancel_initiated_at = $1"
                " WHERE seq = $2",
                now,
                batch.seq,
            )
            await self._finish_unclaimed(conn, batch.seq, RequestState.CANCELED, now)
            await self._end_if_done(conn, [batch.seq], now)
            return await self._get_batch(conn, workspace_id, batch_id)

        return await self._transaction(run, durable=True)

    async def delete_batch(
        self, workspace_id: str, batch_id: str
    ) -> tuple[BatchRecord | None, bool]:
        async def run(conn: Conn) -> tuple[BatchRecord | None, bool]:
            batch = await self._get_batch(conn, workspace_id, batch_id, lock=True)
            if batch is None or batch.processing_status != "ended":
                return batch, False
            lo, hi = key_range(batch.seq)
            await conn.execute("DELETE FROM requests WHERE key BETWEEN $1 AND $2", lo, hi)
            await conn.execute("DELETE FROM batches WHERE seq = $1", batch.seq)
            return batch, True

        return await self._transaction(run, durable=True)

    async def result_lines(self, batch: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        lo, hi = key_range(batch.seq)
        after = lo - 1
        sql = (
            "SELECT count(*), max(key), string_agg(line, '\\x0a'::bytea ORDER BY key) FROM ("
            f" SELECT key, {result_line('({})::bytea')} AS line"
            " FROM requests WHERE key > $1 AND key <= $2 ORDER BY key LIMIT $3) page"
        )
        while True:
            row = await self._call(lambda c: c.fetchrow(sql, after, hi, page_size))  # noqa: B023
            assert row is not None
            count, last, chunk = row
            if chunk:
                yield bytes(chunk) + b"\n"
            after = hi if count < page_size else last
            if after >= hi:
                return

    # --- scheduling -------------------------------------------------------------

    async def claim_requests(
        self, worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[ClaimedRequest]:
        turn = self._rr
        self._rr += 1

        async def run(conn: Conn) -> list[ClaimedRequest]:
            spaces: dict[str, list[int]] = defaultdict(list)
            for seq, workspace_id in await conn.fetch(
                "SELECT seq, workspace_id FROM batches WHERE processing_status = 'in_progress'"
                " AND expires_at > $1 ORDER BY seq",
                now,
            ):
                spaces[workspace_id].append(seq)
            claimed: list[ClaimedRequest] = []
            if not spaces:
                return claimed
            # Round-robin over workspaces, then over each workspace's batches (as in
            # the SQLite store); each pass is one statement over (batch, want) arrays.
            order = fair_order(spaces, turn)
            for _ in range(3):
                if len(claimed) >= limit or not order:
                    break
                wants = shares(order, limit - len(claimed))
                rows = await conn.fetch(
                    "UPDATE requests r SET state = 1, attempts = r.attempts + 1,"
                    " lease_until = $1, worker = $2"
                    " FROM (SELECT q.key FROM unnest($3::bigint[], $4::int[]) AS t(seq, want)"
                    "  CROSS JOIN LATERAL (SELECT key FROM requests WHERE batch_seq = t.seq"
                    "   AND state = 0 AND available_at <= $5 ORDER BY available_at LIMIT t.want"
                    "   FOR UPDATE SKIP LOCKED) q) picked"
                    " WHERE r.key = picked.key"
                    " RETURNING r.key, r.batch_seq, r.custom_id, r.params, r.attempts",
                    now + lease_seconds,
                    worker_id,
                    [seq for seq, _ in wants],
                    [want for _, want in wants],
                    now,
                )
                got: dict[int, int] = defaultdict(int)
                for key, seq, cid, params, attempts in rows:
                    claimed.append(ClaimedRequest(key, seq, cid, params or b"", attempts))
                    got[seq] += 1
                order = still_full(order, wants, got)
            return claimed

        return await self._transaction(run)

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        finals = [o for o in outcomes if o.state != RequestState.QUEUED]
        retries = [o for o in outcomes if o.state == RequestState.QUEUED]

        async def run(conn: Conn) -> RecordReport:
            finished_keys: set[int] = set()
            if finals:
                rows = await conn.fetch(
                    "UPDATE requests r SET state = u.state, result = u.line, params = NULL,"
                    " finished_at = $1, lease_until = NULL, worker = NULL"
                    " FROM unnest($2::bigint[], $3::int[], $4::smallint[], $5::bytea[])"
                    "  AS u(key, attempts, state, line)"
                    " WHERE r.key = u.key AND r.state = 1 AND r.worker = $6"
                    "  AND r.attempts = u.attempts RETURNING r.key",
                    now,
                    [o.key for o in finals],
                    [o.attempts for o in finals],
                    [int(o.state) for o in finals],
                    [o.line for o in finals],
                    worker_id,
                )
                finished_keys = {r[0] for r in rows}
            requeued: set[int] = set()
            if retries:
                rows = await conn.fetch(
                    "UPDATE requests r SET state = 0, available_at = u.available_at,"
                    " lease_until = NULL, worker = NULL"
                    " FROM unnest($1::bigint[], $2::int[], $3::float8[])"
                    "  AS u(key, attempts, available_at)"
                    " WHERE r.key = u.key AND r.state = 1 AND r.worker = $4"
                    "  AND r.attempts = u.attempts RETURNING r.key",
                    [o.key for o in retries],
                    [o.attempts for o in retries],
                    [o.available_at for o in retries],
                    worker_id,
                )
                requeued = {r[0] for r in rows}
            finished = [o for o in finals if o.key in finished_keys]
            deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for o in finished:
                deltas[o.key >> KEY_BITS][COUNTER[o.state]] += 1
            for seq in sorted(deltas):  # batch rows in one order: no deadlock between flushes
                await self._move_counts(conn, seq, deltas[seq])
            usage = await self._usage_of(conn, finished, now)
            if usage:
                await conn.executemany(numbered(USAGE_UPSERT), [usage_params(u) for u in usage])
            retried = sorted({k >> KEY_BITS for k in requeued})
            if retried:
                for (seq,) in await conn.fetch(
                    "SELECT seq FROM batches WHERE seq = ANY($1::bigint[])"
                    " AND processing_status = 'canceling'",
                    retried,
                ):
                    await self._finish_unclaimed(conn, seq, RequestState.CANCELED, now)
            recorded = len(finished) + len(requeued)
            return RecordReport(
                recorded=recorded,
                stale=len(outcomes) - recorded,
                ended_batches=await self._end_if_done(conn, set(deltas) | set(retried), now),
                applied=finished + [o for o in retries if o.key in requeued],
            )

        return await self._transaction(run)

    @staticmethod
    async def _usage_of(conn: Conn, finished: Sequence[Outcome], now: float) -> list[UsageRow]:
        sums = usage_sums(finished)
        if not sums:
            return []
        owners = {
            seq: (workspace_id, api_key_id or "")
            for seq, workspace_id, api_key_id in await conn.fetch(
                "SELECT seq, workspace_id, api_key_id FROM batches WHERE seq = ANY($1::bigint[])",
                list({seq for seq, _ in sums}),
            )
        }
        return usage_rows(sums, owners, now)

    async def extend_leases(self, worker_id: str, keys: Sequence[int], lease_until: float) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(
                "UPDATE requests SET lease_until = $1"
                " WHERE key = ANY($2::bigint[]) AND state = 1 AND worker = $3",
                lease_until,
                list(keys),
                worker_id,
            )

        await self._transaction(run)

    async def housekeeping(self, now: float) -> HousekeepingReport:
        async def run(conn: Conn) -> HousekeepingReport:
            report = HousekeepingReport()
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _HOUSEKEEPING_LOCK):
                return report  # another worker is at it
            status = await conn.execute(
                "UPDATE requests SET state = 0, lease_until = NULL, worker = NULL"
                " WHERE state = 1 AND lease_until < $1",
                now,
            )
            report.reclaimed = int(status.split()[-1])
            touched: list[int] = []
            for seq, processing_status, expires_at in await conn.fetch(
                "SELECT seq, processing_status, expires_at FROM batches"
                " WHERE processing_status IN ('in_progress', 'canceling') ORDER BY seq FOR UPDATE"
            ):
                if expires_at <= now:
                    report.expired_requests += await self._finish_unclaimed(
                        conn, seq, RequestState.EXPIRED, now, include_claimed=True
                    )
                elif processing_status == "canceling":
                    await self._finish_unclaimed(conn, seq, RequestState.CANCELED, now)
                touched.append(seq)
            report.ended_batches = await self._end_if_done(conn, touched, now)
            for seq, batch_id in await conn.fetch(
                "SELECT seq, id FROM batches WHERE archived_at IS NULL AND archive_at <= $1"
                " AND processing_status = 'ended'",
                now,
            ):
                lo, hi = key_range(seq)
                await conn.execute("DELETE FROM requests WHERE key BETWEEN $1 AND $2", lo, hi)
                await conn.execute("UPDATE batches SET archived_at = $1 WHERE seq = $2", now, seq)
                report.archived_batches.append(batch_id)
            return report

        return await self._transaction(run)

    # --- shared steps (inside a transaction) ------------------------------------

    async def _finish_unclaimed(
        self,
        conn: Conn,
        seq: int,
        state: RequestState,
        now: float,
        include_claimed: bool = False,
    ) -> int:
        """Move the batch's queued (and maybe claimed) requests to a final `state`."""
        lo, hi = key_range(seq)
        status = await conn.execute(
            "UPDATE requests SET state = $1, params = NULL, finished_at = $2,"
            " lease_until = NULL, worker = NULL WHERE key BETWEEN $3 AND $4 AND "
            + ("state IN (0, 1)" if include_claimed else "state = 0"),
            int(state),
            now,
            lo,
            hi,
        )
        n = int(status.split()[-1])
        if n:
            await self._move_counts(conn, seq, {COUNTER[state]: n})
        return n

    @staticmethod
    async def _move_counts(conn: Conn, seq: int, counts: dict[str, int]) -> None:
        sets = ", ".join(f"{name} = {name} + ${i + 3}" for i, name in enumerate(counts))
        await conn.execute(
            f"UPDATE batches SET processing = processing - $1, {sets} WHERE seq = $2",
            sum(counts.values()),
            seq,
            *counts.values(),
        )

    @staticmethod
    async def _end_if_done(conn: Conn, seqs: Sequence[int] | set[int], now: float) -> list[str]:
        if not seqs:
            return []
        rows = await conn.fetch(
            "UPDATE batches SET processing_status = 'ended', ended_at = $1"
            " WHERE seq = ANY($2::bigint[]) AND processing = 0"
            " AND processing_status != 'ended' RETURNING id",
            now,
            sorted(seqs),
        )
        return [r[0] for r in rows]
