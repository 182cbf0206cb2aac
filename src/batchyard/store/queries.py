"""The batch lifecycle's statements, named, in one place (both SQL stores run them).

`?` placeholders (the PostgreSQL store numbers them); request states by name. What
the databases do differently (claim locking, bulk writes, result pages) is in their
own modules; everything else about a batch's life is here and in `lifecycle.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

from batchyard.store.layout import RequestState

QUEUED = int(RequestState.QUEUED)
CLAIMED = int(RequestState.CLAIMED)
CANCELED = int(RequestState.CANCELED)
EXPIRED = int(RequestState.EXPIRED)

BATCH_COLUMNS = (
    "seq, id, workspace_id, processing_status, created_at, expires_at, cancel_initiated_at, "
    "ended_at, archived_at, total, processing, succeeded, errored, canceled, expired"
)


def placeholders(n: int) -> str:
    """`?, ?, …` for an `IN (…)` of `n` values."""
    return ", ".join("?" * n)


# --- creating, reading, canceling and deleting a batch ----------------------------

INSERT_BATCH = (
    "INSERT INTO batches (id, workspace_id, api_key_id, dialect, processing_status,"
    " created_at, expires_at, archive_at, total, processing, webhook_url, prefix)"
    " VALUES (?, ?, ?, ?, 'in_progress', ?, ?, ?, ?, ?, ?, ?) RETURNING seq"
)
QUEUED_IN_WORKSPACE = (
    "SELECT coalesce(sum(processing), 0) FROM batches"
    " WHERE workspace_id = ? AND processing_status != 'ended'"
)
GET_BATCH = f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = ? AND workspace_id = ?"
MARK_CANCELING = (
    "UPDATE batches SET processing_status = 'canceling', cancel_initiated_at = ? WHERE seq = ?"
)
DELETE_REQUESTS = "DELETE FROM requests WHERE key BETWEEN ? AND ?"
DELETE_BATCH = "DELETE FROM batches WHERE seq = ?"

# --- claims and outcomes ---------------------------------------------------------

CLAIMABLE_BATCHES = (
    "SELECT seq, workspace_id, prefix, expires_at, dialect FROM batches b"
    " WHERE processing_status = 'in_progress' AND expires_at > ?"
    f" AND EXISTS (SELECT 1 FROM requests r WHERE r.batch_seq = b.seq AND r.state = {QUEUED}"
    "  AND r.available_at <= ?) ORDER BY seq"
)
"""The batches a claim shares out (with a request claimable now: one index probe each)."""
FINISH_LEASED = (  # one request at a time (the PostgreSQL store updates all at once)
    "UPDATE requests SET state = ?, result = ?, params = NULL, finished_at = ?,"
    " lease_until = NULL, worker = NULL"
    f" WHERE key = ? AND state = {CLAIMED} AND worker = ? AND attempts = ?"
)
"""Record a final outcome, only while the worker still holds the lease it was claimed with."""
REQUEUE_LEASED = (
    f"UPDATE requests SET state = {QUEUED}, available_at = ?, lease_until = NULL, worker = NULL"
    f" WHERE key = ? AND state = {CLAIMED} AND worker = ? AND attempts = ?"
)
EXTEND_LEASE = (
    f"UPDATE requests SET lease_until = ? WHERE key = ? AND state = {CLAIMED} AND worker = ?"
)


def canceling_among(n: int) -> str:
    return (
        f"SELECT seq FROM batches WHERE seq IN ({placeholders(n)})"
        " AND processing_status = 'canceling' ORDER BY seq"
    )


def owners_of(n: int) -> str:
    """The workspace and API key of `n` batches (whose usage a flush counts)."""
    return f"SELECT seq, workspace_id, api_key_id FROM batches WHERE seq IN ({placeholders(n)})"


# --- counters and ending ---------------------------------------------------------

FINISH_QUEUED = (
    "UPDATE requests SET state = ?, params = NULL, finished_at = ?, lease_until = NULL,"
    f" worker = NULL WHERE batch_seq = ? AND state = {QUEUED}"
)
"""Give a batch's queued requests a final state (canceled)."""
FINISH_UNFINISHED = (
    "UPDATE requests SET state = ?, params = NULL, finished_at = ?, lease_until = NULL,"
    f" worker = NULL WHERE key BETWEEN ? AND ? AND state IN ({QUEUED}, {CLAIMED})"
)
"""Give a batch's queued and claimed requests a final state (expired)."""


def move_counts(columns: Iterable[str]) -> str:
    """Move requests out of `processing` into the counters `columns` (one `?` each, after
    the `processing` one; the batch's seq last)."""
    sets = ", ".join(f"{name} = {name} + ?" for name in columns)
    return f"UPDATE batches SET processing = processing - ?, {sets} WHERE seq = ?"


def end_if_done(n: int) -> str:
    """End those of `n` batches with nothing left processing; RETURNING their ids."""
    return (
        "UPDATE batches SET processing_status = 'ended', ended_at = ?"
        f" WHERE seq IN ({placeholders(n)}) AND processing = 0"
        " AND processing_status != 'ended' RETURNING id"
    )


# --- housekeeping ----------------------------------------------------------------

RECLAIM_LAPSED = (
    f"UPDATE requests SET state = {QUEUED}, lease_until = NULL, worker = NULL"
    f" WHERE state = {CLAIMED} AND lease_until < ?"
)
UNENDED_BATCHES = (
    "SELECT seq, processing_status, expires_at FROM batches"
    " WHERE processing_status IN ('in_progress', 'canceling') ORDER BY seq"
)
PAST_RETENTION = (
    "SELECT seq, id FROM batches WHERE archived_at IS NULL AND archive_at <= ?"
    " AND processing_status = 'ended'"
)
MARK_ARCHIVED = "UPDATE batches SET archived_at = ? WHERE seq = ?"
OPEN_COUNTS = (
    "SELECT count(*), coalesce(sum(processing), 0) FROM batches WHERE processing_status != 'ended'"
)

# --- usage -----------------------------------------------------------------------

USAGE_UPSERT = (
    "INSERT INTO usage (bucket, workspace_id, api_key_id, model, service_tier, requests,"
    " input_tokens, output_tokens, cache_read_input_tokens, cache_creation_5m_input_tokens,"
    " cache_creation_1h_input_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (bucket, workspace_id, api_key_id, model, service_tier) DO UPDATE SET"
    " requests = usage.requests + excluded.requests,"
    " input_tokens = usage.input_tokens + excluded.input_tokens,"
    " output_tokens = usage.output_tokens + excluded.output_tokens,"
    " cache_read_input_tokens = usage.cache_read_input_tokens + excluded.cache_read_input_tokens,"
    " cache_creation_5m_input_tokens = usage.cache_creation_5m_input_tokens"
    " + excluded.cache_creation_5m_input_tokens,"
    " cache_creation_1h_input_tokens = usage.cache_creation_1h_input_tokens"
    " + excluded.cache_creation_1h_input_tokens"
)


def result_line(cast: str = "{}") -> str:
    """SQL for a request's results line: the stored one, or one made from its
    `custom_id` for canceled and expired requests. `cast` wraps the made text where
    the database needs it as bytes (PostgreSQL: `({})::bytea`; custom_ids hold no
    backslashes, so the cast keeps them as they are)."""

    def made(kind: str) -> str:
        text = '\'{"custom_id":"\' || custom_id || \'","result":{"type":"' + kind + "\"}}'"
        return cast.format(text)

    return (
        f"CASE WHEN result IS NOT NULL THEN result WHEN state = {CANCELED} THEN {made('canceled')}"
        f" WHEN state = {EXPIRED} THEN {made('expired')} END"
    )


def result_page(line_of: str, joined: str) -> str:
    """One page of a batch's results lines (keys after `?`, up to `?`, at most `?`):
    (count, last key, the lines joined by the database with `joined(line)`)."""
    return (
        f"SELECT count(*), max(key), {joined} FROM ("
        f" SELECT key, {line_of} AS line"
        " FROM requests WHERE key > ? AND key <= ? ORDER BY key LIMIT ?) page"
    )
