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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
from typing_extensions import Buffer

from batchyard.errors import InvalidRequest, StoreUnavailable
from batchyard.store import migrations
from batchyard.store import queries as q
from batchyard.store.layout import KEY_BITS, key_range
from batchyard.store.records import BatchRecord, ClaimedRequest, Outcome
from batchyard.store.sql_runner import Row
from batchyard.store.sql_store import SqlStore, TxBody

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


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, synchronous: str = "NORMAL", pool_size: int = 10) -> None:
        self.url = url
        self.synchronous = synchronous
        self.pool_size = pool_size
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
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

    async def on_connection(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn` on one pooled connection (a blob's upload, chunk by chunk, in one
        transaction of its own); failures as in every call (StoreUnavailable)."""
        return await self._call(fn)

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

    # --- what the SQL store base needs -------------------------------------------------------

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        row = await self._call(lambda c: c.fetchrow(numbered(sql), *params))
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        rows = await self._call(lambda c: c.fetch(numbered(sql), *params))
        return [tuple(r) for r in rows]

    async def transact(self, body: TxBody[T], *, durable: bool = False) -> T:
        return await self._transaction(lambda conn: body(PgTx(conn)), durable=durable)

    # --- opening and closing --------------------------------------------------------------

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

    # --- results ---------------------------------------------------------------

    async def result_lines(self, batch: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        lo, hi = key_range(batch.seq)
        after = lo - 1
        while True:
            row = await self._call(lambda c: c.fetchrow(_RESULT_PAGE, after, hi, page_size))  # noqa: B023
            assert row is not None
            count, last, chunk = row
            if chunk:
                yield bytes(chunk) + b"\n"
            after = hi if count < page_size else last
            if after >= hi:
                return


_RESULT_PAGE = numbered(
    q.result_page(q.result_line("({})::bytea"), "string_agg(line, '\\x0a'::bytea ORDER BY key)")
)


def _changed(status: str) -> int:
    """The row count of a command status (`UPDATE 5`, `DELETE 0`)."""
    return int(status.split()[-1])


class PgTx:
    """A transaction on a pooled connection: rows and advisory locks, since many
    processes write at once; bulk writes by COPY and over arrays (`unnest`)."""

    locks_rows = True

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        row = await self.conn.fetchrow(numbered(sql), *params)
        return tuple(row) if row is not None else None

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        return [tuple(r) for r in await self.conn.fetch(numbered(sql), *params)]

    async def execute(self, sql: str, *params: object) -> int:
        return _changed(await self.conn.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        await self.conn.executemany(numbered(sql), rows)

    async def lock_workspace(self, workspace_id: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", workspace_id)

    async def try_lock_housekeeping(self) -> bool:
        return bool(
            await self.conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _HOUSEKEEPING_LOCK)
        )

    async def insert_requests(
        self, seq: int, custom_ids: Sequence[str], params: Sequence[Buffer]
    ) -> None:
        base = seq << KEY_BITS
        await self.conn.copy_records_to_table(
            "requests",
            records=(
                (base + i, seq, cid, bytes(p))
                for i, (cid, p) in enumerate(zip(custom_ids, params, strict=True))
            ),
            columns=("key", "batch_seq", "custom_id", "params"),
        )

    async def claim_pass(
        self,
        wants: list[tuple[int, int]],
        worker_id: str,
        lease_until: float,
        now: float,
        owners: dict[int, tuple[str, str]],
    ) -> list[ClaimedRequest]:
        rows = await self.conn.fetch(
            _CLAIM_PASS,
            lease_until,
            worker_id,
            [seq for seq, _ in wants],
            [want for _, want in wants],
            now,
        )
        return [ClaimedRequest(k, s, cid, p or b"", a, *owners[s]) for k, s, cid, p, a in rows]

    async def finish_leased(
        self, finals: Sequence[Outcome], worker_id: str, now: float
    ) -> list[Outcome]:
        rows = await self.conn.fetch(
            _FINISH_LEASED,
            now,
            [o.key for o in finals],
            [o.attempts for o in finals],
            [int(o.state) for o in finals],
            [o.line for o in finals],
            worker_id,
        )
        written = {(r[0], r[1]) for r in rows}
        return [o for o in finals if (o.key, o.attempts) in written]

    async def requeue_leased(self, retries: Sequence[Outcome], worker_id: str) -> list[Outcome]:
        rows = await self.conn.fetch(
            _REQUEUE_LEASED,
            [o.key for o in retries],
            [o.attempts for o in retries],
            [o.available_at for o in retries],
            worker_id,
        )
        requeued = {(r[0], r[1]) for r in rows}
        return [o for o in retries if (o.key, o.attempts) in requeued]


_CLAIM_PASS = (
    f"UPDATE requests r SET state = {q.CLAIMED}, attempts = r.attempts + 1,"
    " lease_until = $1, worker = $2"
    " FROM (SELECT q.key FROM unnest($3::bigint[], $4::int[]) AS t(seq, want)"
    "  CROSS JOIN LATERAL (SELECT key FROM requests WHERE batch_seq = t.seq"
    f"   AND state = {q.QUEUED} AND available_at <= $5 ORDER BY available_at, key LIMIT t.want"
    "   FOR UPDATE SKIP LOCKED) q) picked"
    " WHERE r.key = picked.key"
    " RETURNING r.key, r.batch_seq, r.custom_id, r.params, r.attempts"
)
"""One claim pass: each batch's share in one statement, skipping rows others hold."""
_FINISH_LEASED = (
    "UPDATE requests r SET state = u.state, result = u.line, params = NULL,"
    " finished_at = $1, lease_until = NULL, worker = NULL"
    " FROM unnest($2::bigint[], $3::int[], $4::smallint[], $5::bytea[])"
    "  AS u(key, attempts, state, line)"
    f" WHERE r.key = u.key AND r.state = {q.CLAIMED} AND r.worker = $6"
    "  AND r.attempts = u.attempts RETURNING r.key, r.attempts"
)
"""`queries.FINISH_LEASED` for a whole flush in one statement."""
_REQUEUE_LEASED = (
    f"UPDATE requests r SET state = {q.QUEUED}, available_at = u.available_at,"
    " lease_until = NULL, worker = NULL"
    " FROM unnest($1::bigint[], $2::int[], $3::float8[]) AS u(key, attempts, available_at)"
    f" WHERE r.key = u.key AND r.state = {q.CLAIMED} AND r.worker = $4"
    "  AND r.attempts = u.attempts RETURNING r.key, r.attempts"
)
"""`queries.REQUEUE_LEASED` for a whole flush in one statement."""
