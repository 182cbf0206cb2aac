"""The SQLite store: one WAL file, one writer connection, a reader connection per thread.

Every operation runs in a worker thread so the event loop never blocks on the disk.
Writes take `BEGIN IMMEDIATE`, so several processes (API + `batchyard worker`)
can share one file: SQLite serialises them and `busy_timeout` waits.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread
from typing_extensions import Buffer

from batchyard.errors import StoreUnavailable
from batchyard.store import migrations
from batchyard.store.claims import fair_order, shares, still_full
from batchyard.store.layout import COUNTER as _COUNTER
from batchyard.store.layout import KEY_BITS, RequestState, key_range
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
from batchyard.store.sql import BATCH_COLUMNS as _BATCH_COLUMNS
from batchyard.store.sql import (
    USAGE_UPSERT,
    Row,
    Statement,
    result_line,
    usage_params,
)
from batchyard.store.sql import batch_record as _batch
from batchyard.store.tallies import usage_rows, usage_sums

P = ParamSpec("P")
T = TypeVar("T")


class SQLiteStore(SharedSql):
    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        self.synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(8)
        self._rr = 0
        self._checkpoint_wanted = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._closing = False
        self._closed = threading.Event()
        super().__init__()

    # --- plumbing ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        pass
        return conn

    def reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction. `durable` ones (what the API accepts: create, cancel,
        delete) are fsynced at commit whatever `synchronous` says; the worker's
        commits follow `synchronous`, since an outcome lost to a power cut only
        means its request runs again."""
        assert self._writer is not None, "store is not open"
        with self._write_lock:
            conn = self._writer
            upgrade = durable and self.synchronous != "FULL"
            if upgrade:
                conn.execute("PRAGMA synchronous = FULL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if upgrade:
                    conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._checkpoint_wanted.set()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await anyio.to_thread.run_sync(
                functools.partial(fn, *args, **kwargs), limiter=self._limiter
            )
        except sqlite3.OperationalError as exc:
            # Locked past busy_timeout, disk full, read-only file, I/O error: the
            # transaction was rolled back; the caller may try again later.
            raise StoreUnavailable(f"The store is unavailable ({exc}); try again") from exc

    # --- the SqlRunner port (shared SQL, e.g. tenancy) ----------------------------

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        return await self.run(lambda: self.reader().execute(sql, params).fetchone())

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        return await self.run(lambda: self.reader().execute(sql, params).fetchall())

    async def write(self, *statements: Statement, durable: bool = True) -> list[Row | None]:
        def run() -> list[Row | None]:
            with self.transaction(durable=durable) as conn:
                return [conn.execute(sql, params).fetchone() for sql, params in statements]

        return await self.run(run)

    # --- lifecycle --------------------------------------------------------------

    async def open(self) -> None:
        self._closing = False
        self._closed.clear()
        await self.run(self._open)

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        # Checkpoints run in a thread of their own, not inside the commit that
        # happens to cross the threshold (that would put a 45 MB copy and an
        # fsync into the answer of the batch create that wrote it).
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._writer = conn
        self._migrate(conn)
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="batchyard-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._checkpoint_wanted.wait()
                if self._closing:
                    return
                self._checkpoint_wanted.clear()
                with contextlib.suppress(sqlite3.Error):  # busy: the next request retries
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                # At most a few checkpoints a second, but stop at once when closing.
                if self._closed.wait(0.2):
                    return
        finally:
            conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
                for migration in migrations.load("sqlite"):
                    if migration.version in done:
                        continue
                    for statement in _split_sql(migration.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (migration.version, migration.name, time.time()),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    async def close(self) -> None:
        self._closing = True
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpoint_wanted.set()
            await anyio.to_thread.run_sync(self._checkpointer.join)
            self._checkpointer = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._local = threading.local()  # a reopened store makes new readers
        if self._writer is not None:
            with self._write_lock:
                with contextlib.suppress(sqlite3.Error):
                    self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._writer.close()
                self._writer = None

    # --- batches ----------------------------------------------------------------

    async def create_batch(
        self,
        batch: NewBatch,
        custom_ids: Sequence[str],
        params: Sequence[Buffer],
        queued_limit: int | None = None,
        openai: OpenAIBatchRecord | None = None,
    ) -> BatchRecord:
        return await self.run(self._create_batch, batch, custom_ids, params, queued_limit, openai)

    def _create_batch(
        self,
        batch: NewBatch,
        custom_ids: Sequence[str],
        params: Sequence[Buffer],
        queued_limit: int | None,
        openai: OpenAIBatchRecord | None,
    ) -> BatchRecord:
        n = len(custom_ids)
        assert len(params) == n
        with self.transaction(durable=True) as conn:
            if queued_limit is not None:
                # Inside the write transaction: concurrent creates cannot both pass.
                (queued,) = conn.execute(
                    "SELECT coalesce(sum(processing), 0) FROM batches"
                    " WHERE workspace_id = ? AND processing_status != 'ended'",
                    (batch.workspace_id,),
                ).fetchone()
                if queued + n > queued_limit:
                    raise QueueFull(queued_limit, queued)
            cur = conn.execute(
                "INSERT INTO batches (id, workspace_id, api_key_id, dialect, processing_status,"
                " created_at, expires_at, archive_at, total, processing, webhook_url)"
                " VALUES (?, ?, ?, ?, 'in_progress', ?, ?, ?, ?, ?, ?)",
                (
                    batch.id,
                    batch.workspace_id,
                    batch.api_key_id,
                    batch.dialect,
                    batch.created_at,
                    batch.expires_at,
                    batch.archive_at,
                    n,
                    n,
                    batch.webhook_url,
                ),
            )
            seq = cur.lastrowid
            assert seq is not None
            base = seq << KEY_BITS
            conn.executemany(
                "INSERT INTO requests (key, batch_seq, custom_id, params) VALUES (?, ?, ?, ?)",
                zip(range(base, base + n), itertools.repeat(seq), custom_ids, params),
            )
            if openai is not None:
                conn.execute(*SqlOpenAIBatches.insert(openai))
        return created_record(seq, batch, n)

    async def get_batch(self, workspace_id: str, batch_id: str) -> BatchRecord | None:
        return await self.run(self._get_batch, None, workspace_id, batch_id)

    def _get_batch(
        self, conn: sqlite3.Connection | None, workspace_id: str, batch_id: str
    ) -> BatchRecord | None:
        conn = conn or self.reader()
        row = conn.execute(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE id = ? AND workspace_id = ?",
            (batch_id, workspace_id),
        ).fetchone()
        return _batch(row) if row else None

    async def cancel_batch(
        self, workspace_id: str, batch_id: str, now: float
    ) -> BatchRecord | None:
        return await self.run(self._cancel_batch, workspace_id, batch_id, now)

    def _cancel_batch(self, workspace_id: str, batch_id: str, now: float) -> BatchRecord | None:
        with self.transaction(durable=True) as conn:
            batch = self._get_batch(conn, workspace_id, batch_id)
            if batch is None or batch.processing_status != "in_progress":
                return batch
            conn.execute(
                "UPDATE batches SET processing_status = 'canceling', cancel_initiated_at = ?"
                " WHERE seq = ?",
                (now, batch.seq),
            )
            self._finish_unclaimed(conn, batch.seq, RequestState.CANCELED, now)
            self._end_if_done(conn, [batch.seq], now)
            return self._get_batch(conn, workspace_id, batch_id)

    async def delete_batch(
        self, workspace_id: str, batch_id: str
    ) -> tuple[BatchRecord | None, bool]:
        return await self.run(self._delete_batch, workspace_id, batch_id)

    def _delete_batch(self, workspace_id: str, batch_id: str) -> tuple[BatchRecord | None, bool]:
        with self.transaction(durable=True) as conn:
            batch = self._get_batch(conn, workspace_id, batch_id)
            if batch is None or batch.processing_status != "ended":
                return batch, False
            lo, hi = key_range(batch.seq)
            conn.execute("DELETE FROM requests WHERE key BETWEEN ? AND ?", (lo, hi))
            conn.execute("DELETE FROM batches WHERE seq = ?", (batch.seq,))
            return batch, True

    async def result_lines(self, batch: BatchRecord, page_size: int = 2000) -> AsyncIterator[bytes]:
        lo, hi = key_range(batch.seq)
        after = lo - 1
        while True:
            chunk, after = await self.run(self._result_page, after, hi, page_size)
            if chunk:
                yield chunk
            if after >= hi:
                return

    def _result_page(self, after: int, hi: int, page_size: int) -> tuple[bytes, int]:
        # SQLite joins the page's lines itself: one bytes object per page, no
        # per-row Python work. Line order inside a page does not matter (the
        # results file is unordered); pages follow the key order.
        count, last, chunk = (
            self.reader()
            .execute(
                "SELECT count(*), max(key), CAST(group_concat(line, X'0A') AS BLOB) FROM ("
                f" SELECT key, {result_line()} AS line"
                " FROM requests WHERE key > ? AND key <= ? ORDER BY key LIMIT ?)",
                (after, hi, page_size),
            )
            .fetchone()
        )
        if count < page_size:
            last = hi
        return (chunk + b"\n" if chunk else b""), last

    # --- scheduling -------------------------------------------------------------

    async def claim_requests(
        self, worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[ClaimedRequest]:
        return await self.run(self._claim_requests, worker_id, now, lease_seconds, limit)

    def _claim_requests(
        self, worker_id: str, now: float, lease_seconds: float, limit: int
    ) -> list[ClaimedRequest]:
        claimed: list[ClaimedRequest] = []
        with self.transaction() as conn:
            spaces: dict[str, list[int]] = defaultdict(list)
            for seq, workspace_id in conn.execute(
                "SELECT seq, workspace_id FROM batches WHERE processing_status = 'in_progress'"
                " AND expires_at > ? ORDER BY seq",
                (now,),
            ):
                spaces[workspace_id].append(seq)
            if not spaces:
                return claimed
            # Round-robin over workspaces, then over each workspace's batches: every
            # workspace gets an equal share of this claim however many batches it has.
            order = fair_order(spaces, self._rr)
            self._rr += 1
            lease_until = now + lease_seconds
            for _ in range(3):
                if len(claimed) >= limit or not order:
                    break
                wants = shares(order, limit - len(claimed))
                got: dict[int, int] = defaultdict(int)
                for seq, want in wants:
                    rows = conn.execute(
                        "UPDATE requests SET state = 1, attempts = attempts + 1, lease_until = ?,"
                        " worker = ? WHERE key IN (SELECT key FROM requests WHERE batch_seq = ?"
                        " AND state = 0 AND available_at <= ? ORDER BY available_at LIMIT ?)"
                        " RETURNING key, custom_id, params, attempts",
                        (lease_until, worker_id, seq, now, want),
                    ).fetchall()
                    claimed.extend(
                        ClaimedRequest(k, seq, cid, bytes(p) if p is not None else b"", a)
                        for k, cid, p, a in rows
                    )
                    got[seq] = len(rows)
                order = still_full(order, wants, got)
        return claimed

    async def record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        return await self.run(self._record_outcomes, worker_id, outcomes, now)

    def _record_outcomes(
        self, worker_id: str, outcomes: Sequence[Outcome], now: float
    ) -> RecordReport:
        deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        finals = [o for o in outcomes if o.state != RequestState.QUEUED]
        retries = [o for o in outcomes if o.state == RequestState.QUEUED]
        with self.transaction() as conn:
            finished = _guarded_update(
                conn,
                "UPDATE requests SET state = ?, result = ?, params = NULL,"
                " finished_at = ?, lease_until = NULL, worker = NULL"
                " WHERE key = ? AND state = 1 AND worker = ? AND attempts = ?",
                finals,
                lambda o: (int(o.state), o.line, now, o.key, worker_id, o.attempts),
            )
            requeued = _guarded_update(
                conn,
                "UPDATE requests SET state = 0, available_at = ?, lease_until = NULL,"
                " worker = NULL WHERE key = ? AND state = 1 AND worker = ? AND attempts = ?",
                retries,
                lambda o: (o.available_at, o.key, worker_id, o.attempts),
            )
            for o in finished:
                deltas[o.key >> KEY_BITS][_COUNTER[o.state]] += 1
            conn.executemany(USAGE_UPSERT, map(usage_params, self._usage_of(conn, finished, now)))
            for seq, counts in deltas.items():
                self._move_counts(conn, seq, counts)
            # A request sent back for retry in a batch that is being canceled is
            # canceled instead: it was never sent to the model successfully.
            retried = {o.key >> KEY_BITS for o in requeued}
            for seq in retried:
                status = conn.execute(
                    "SELECT processing_status FROM batches WHERE seq = ?", (seq,)
                ).fetchone()
                if status and status[0] == "canceling":
                    self._finish_unclaimed(conn, seq, RequestState.CANCELED, now)
            recorded = len(finished) + len(requeued)
            return RecordReport(
                recorded=recorded,
                stale=len(outcomes) - recorded,
                ended_batches=self._end_if_done(conn, set(deltas) | retried, now),
                applied=finished + requeued,
            )

    @staticmethod
    def _usage_of(
        conn: sqlite3.Connection, finished: Sequence[Outcome], now: float
    ) -> list[UsageRow]:
        """The batch usage of these recorded outcomes, summed per batch and model."""
        sums = usage_sums(finished)
        if not sums:
            return []
        seqs = list({seq for seq, _ in sums})
        owners = {
            seq: (workspace_id, api_key_id or "")
            for seq, workspace_id, api_key_id in conn.execute(
                "SELECT seq, workspace_id, api_key_id FROM batches WHERE seq IN"
                f" ({','.join('?' * len(seqs))})",
                seqs,
            )
        }
        return usage_rows(sums, owners, now)

    async def extend_leases(self, worker_id: str, keys: Sequence[int], lease_until: float) -> None:
        await self.run(self._extend_leases, worker_id, keys, lease_until)

    def _extend_leases(self, worker_id: str, keys: Sequence[int], lease_until: float) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE requests SET lease_until = ? WHERE key = ? AND state = 1 AND worker = ?",
                ((lease_until, k, worker_id) for k in keys),
            )

    async def housekeeping(self, now: float) -> HousekeepingReport:
        return await self.run(self._housekeeping, now)

    def _housekeeping(self, now: float) -> HousekeepingReport:
        report = HousekeepingReport()
        with self.transaction() as conn:
            report.reclaimed = conn.execute(
                "UPDATE requests SET state = 0, lease_until = NULL, worker = NULL"
                " WHERE state = 1 AND lease_until < ?",
                (now,),
            ).rowcount
            touched: list[int] = []
            for seq, status, expires_at in conn.execute(
                "SELECT seq, processing_status, expires_at FROM batches"
                " WHERE processing_status IN ('in_progress', 'canceling')"
            ).fetchall():
                if expires_at <= now:
                    report.expired_requests += self._finish_unclaimed(
                        conn, seq, RequestState.EXPIRED, now, include_claimed=True
                    )
                elif status == "canceling":
                    self._finish_unclaimed(conn, seq, RequestState.CANCELED, now)
                touched.append(seq)
            report.ended_batches = self._end_if_done(conn, touched, now)
            for seq, batch_id in conn.execute(
                "SELECT seq, id FROM batches WHERE archived_at IS NULL AND archive_at <= ?"
                " AND processing_status = 'ended'",
                (now,),
            ).fetchall():
                lo, hi = key_range(seq)
                conn.execute("DELETE FROM requests WHERE key BETWEEN ? AND ?", (lo, hi))
                conn.execute("UPDATE batches SET archived_at = ? WHERE seq = ?", (now, seq))
                report.archived_batches.append(batch_id)
        return report

    # --- shared steps (inside a write transaction) ------------------------------

    def _finish_unclaimed(
        self,
        conn: sqlite3.Connection,
        seq: int,
        state: RequestState,
        now: float,
        include_claimed: bool = False,
    ) -> int:
        """Move the batch's queued (and maybe claimed) requests to a final `state`."""
        if include_claimed:
            lo, hi = key_range(seq)
            n = conn.execute(
                "UPDATE requests SET state = ?, params = NULL, finished_at = ?,"
                " lease_until = NULL, worker = NULL WHERE key BETWEEN ? AND ? AND state IN (0, 1)",
                (int(state), now, lo, hi),
            ).rowcount
        else:
            n = conn.execute(
                "UPDATE requests SET state = ?, params = NULL, finished_at = ?"
                " WHERE batch_seq = ? AND state = 0",
                (int(state), now, seq),
            ).rowcount
        if n:
            self._move_counts(conn, seq, {_COUNTER[state]: n})
        return n

    @staticmethod
    def _move_counts(conn: sqlite3.Connection, seq: int, counts: dict[str, int]) -> None:
        moved = sum(counts.values())
        sets = ", ".join(f"{name} = {name} + ?" for name in counts)
        conn.execute(
            f"UPDATE batches SET processing = processing - ?, {sets} WHERE seq = ?",
            (moved, *counts.values(), seq),
        )

    @staticmethod
    def _end_if_done(
        conn: sqlite3.Connection, seqs: Sequence[int] | set[int], now: float
    ) -> list[str]:
        ended: list[str] = []
        for seq in seqs:
            row = conn.execute(
                "UPDATE batches SET processing_status = 'ended', ended_at = ?"
                " WHERE seq = ? AND processing = 0 AND processing_status != 'ended' RETURNING id",
                (now, seq),
            ).fetchone()
            if row:
                ended.append(row[0])
        return ended


def _guarded_update(
    conn: sqlite3.Connection,
    sql: str,
    outcomes: list[Outcome],
    params: Callable[[Outcome], tuple[object, ...]],
) -> list[Outcome]:
    """Apply a per-request UPDATE whose WHERE guards the lease; return the outcomes applied.

    Fast path: one executemany, kept when every row matched. Otherwise (a lease
    was lost) it is rolled back and replayed row by row to learn which applied.
    """
    if not outcomes:
        return []
    conn.execute("SAVEPOINT guarded")
    if conn.executemany(sql, map(params, outcomes)).rowcount == len(outcomes):
        conn.execute("RELEASE guarded")
        return outcomes
    conn.execute("ROLLBACK TO guarded")
    conn.execute("RELEASE guarded")
    return [o for o in outcomes if conn.execute(sql, params(o)).rowcount == 1]


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file (no `;` inside literals in our migrations)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
