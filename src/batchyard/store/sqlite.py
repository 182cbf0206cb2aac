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
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import anyio
import anyio.to_thread
from typing_extensions import Buffer

from batchyard.errors import StoreUnavailable
from batchyard.store import migrations
from batchyard.store import queries as q
from batchyard.store.layout import KEY_BITS, key_range
from batchyard.store.records import BatchRecord, ClaimedRequest, Outcome
from batchyard.store.sql_runner import Row
from batchyard.store.sql_store import SqlStore, TxBody

P = ParamSpec("P")
T = TypeVar("T")


class SQLiteStore(SqlStore):
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

    # --- what the SQL store base needs ----------------------------------------------

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        return await self.run(lambda: self.reader().execute(sql, params).fetchone())

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        return await self.run(lambda: self.reader().execute(sql, params).fetchall())

    async def transact(self, body: TxBody[T], *, durable: bool = False) -> T:
        def run() -> T:
            with self.transaction(durable=durable) as conn:
                return _drive(body(SqliteTx(conn)))

        return await self.run(run)

    # --- opening and closing --------------------------------------------------------------

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

    # --- results ---

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
        count, last, chunk = self.reader().execute(_RESULT_PAGE, (after, hi, page_size)).fetchone()
        if count < page_size:
            last = hi
        return (chunk + b"\n" if chunk else b""), last


_RESULT_PAGE = q.result_page(q.result_line(), "CAST(group_concat(line, X'0A') AS BLOB)")


class SqliteTx:
    """A write transaction on the writer connection. Its coroutines never suspend (the
    store drives them in its thread); writers are serial (BEGIN IMMEDIATE), so there
    is nothing to lock."""

    locks_rows = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def fetchone(self, sql: str, *params: object) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    async def fetchall(self, sql: str, *params: object) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, *params: object) -> int:
        return self.conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.conn.executemany(sql, rows)

    async def lock_workspace(self, workspace_id: str) -> None:
        pass

    async def try_lock_housekeeping(self) -> bool:
        return True

    async def insert_requests(
        self, seq: int, custom_ids: Sequence[str], params: Sequence[Buffer]
    ) -> None:
        base = seq << KEY_BITS
        self.conn.executemany(
            "INSERT INTO requests (key, batch_seq, custom_id, params) VALUES (?, ?, ?, ?)",
            zip(range(base, base + len(custom_ids)), itertools.repeat(seq), custom_ids, params),
        )

    async def claim_pass(
        self,
        wants: list[tuple[int, int]],
        worker_id: str,
        lease_until: float,
        now: float,
        owners: dict[int, tuple[str, str]],
    ) -> list[ClaimedRequest]:
        claimed: list[ClaimedRequest] = []
        for seq, want in wants:
            params = (lease_until, worker_id, seq, now, want)
            rows = self.conn.execute(_CLAIM_FROM_BATCH, params).fetchall()
            ws, dialect = owners[seq]
            claimed.extend(
                ClaimedRequest(k, seq, cid, bytes(p) if p is not None else b"", a, ws, dialect)
                for k, cid, p, a in rows
            )
        return claimed

    async def finish_leased(
        self, finals: Sequence[Outcome], worker_id: str, now: float
    ) -> list[Outcome]:
        return self._guarded(
            q.FINISH_LEASED,
            finals,
            lambda o: (int(o.state), o.line, now, o.key, worker_id, o.attempts),
        )

    async def requeue_leased(self, retries: Sequence[Outcome], worker_id: str) -> list[Outcome]:
        return self._guarded(
            q.REQUEUE_LEASED, retries, lambda o: (o.available_at, o.key, worker_id, o.attempts)
        )

    def _guarded(
        self, sql: str, outcomes: Sequence[Outcome], params: Callable[[Outcome], Sequence[object]]
    ) -> list[Outcome]:
        """Fast path: one executemany, kept when every row matched. Otherwise (a lease
        was lost) it is rolled back and replayed row by row to learn which applied."""
        conn = self.conn
        conn.execute("SAVEPOINT guarded")
        if conn.executemany(sql, map(params, outcomes)).rowcount == len(outcomes):
            conn.execute("RELEASE guarded")
            return list(outcomes)
        conn.execute("ROLLBACK TO guarded")
        conn.execute("RELEASE guarded")
        return [o for o in outcomes if conn.execute(sql, params(o)).rowcount == 1]


_CLAIM_FROM_BATCH = (
    f"UPDATE requests SET state = {q.CLAIMED}, attempts = attempts + 1, lease_until = ?,"
    " worker = ? WHERE key IN (SELECT key FROM requests WHERE batch_seq = ?"
    f" AND state = {q.QUEUED} AND available_at <= ? ORDER BY available_at, key LIMIT ?)"
    " RETURNING key, custom_id, params, attempts"
)


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (a SqliteTx body) to its end, here."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("a SQLite transaction body awaited something that suspends")


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file (no `;` inside literals in our migrations)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
