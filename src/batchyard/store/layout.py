"""The storage layout in one place: tables, keys, states (the migrations create it).

- `batches` — one row per batch of either dialect (`dialect`: anthropic | openai).
  `seq` (identity) orders them; `id` is the public `msgbatch_…` id, unique.
  `processing_status`: in_progress → canceling → ended (or in_progress → ended).
  Counters: `total`, `processing` (not final yet) and one per final state
  (`succeeded`, `errored`, `canceled`, `expired`), moved in the transaction that
  moves the requests. `expires_at` (24 h after creation), `archive_at` (when its
  results are deleted: retention), `archived_at` (when they were). `webhook_url`,
  `webhook_attempts`, `webhook_next_at` (a lease while one worker delivers it, then
  the next retry), `webhook_done_at` (delivered, or given up). `prefix`: the most
  common prompt-prefix key of its requests (claims run batches that start alike
  together; NULL: a group of its own).
- `requests` — one row per request. `key` = (batch seq << KEY_BITS) | index, so a
  batch is one key range (`key_range`). `state` is a RequestState; `params` (the
  request as received) until it is final, then `result` (the whole results line;
  NULL for canceled and expired requests, whose lines are made from `custom_id`).
  A claim sets `worker`, `lease_until` and `attempts + 1`; an outcome is recorded
  only while that lease is held (same worker, same `attempts`). `available_at`: a
  retry's earliest time.
- `usage` — hourly counters keyed by (bucket, workspace_id, api_key_id, model,
  service_tier 'batch' | 'standard'): requests and token counts (cache columns too).
- `workspaces`, `api_keys` (`digest`: SHA-256 of the key; the key is never stored).
- `files` (`blob`: the key of the bytes in the blob store; `expires_at`, found by the
  index `files_expiry`: the worker deletes the record and its bytes once past),
  `file_chunks` (PostgreSQL only: the bytes of each blob as rows keyed by (`blob`,
  `n`), `data` up to 1 MiB each, written in one transaction; SQLite keeps the bytes
  in the files directory), `openai_batches` (the
  OpenAI Batch API's view of a batch; `batch_id` NULL when its input failed
  validation; `finalized_at` once its output files are written).
- `responses` — stored objects of the OpenAI Responses API: `body` (the Response's
  JSON as answered), `input_items` (JSON array of its input items),
  `previous_response_id`; read and deleted only within their `workspace_id`.
- `workers` — each worker's own report, upserted every few seconds.
- `schema_migrations` — the migrations applied (version, name, applied_at).
"""

from __future__ import annotations

import enum


class RequestState(enum.IntEnum):
    """`requests.state`."""

    QUEUED = 0
    CLAIMED = 1
    SUCCEEDED = 2
    ERRORED = 3
    CANCELED = 4
    EXPIRED = 5


FINAL_STATES = (
    RequestState.SUCCEEDED,
    RequestState.ERRORED,
    RequestState.CANCELED,
    RequestState.EXPIRED,
)

COUNTER = {state: state.name.lower() for state in FINAL_STATES}
"""The `batches` column that counts requests in each final state."""

RESULT_KINDS: dict[str, RequestState] = {
    "errored": RequestState.ERRORED,
    "succeeded": RequestState.SUCCEEDED,
    "canceled": RequestState.CANCELED,
    "expired": RequestState.EXPIRED,
}
"""A results line's `result.type` → the state of a request that has it."""

KIND_OF: dict[RequestState, str] = {state: kind for kind, state in RESULT_KINDS.items()}
"""A final state → its results line's `result.type`."""

KEY_BITS = 17
"""A request's key is (batch seq << 17) | index: a batch is one key range (2^17 > 100,000)."""


def key_range(seq: int) -> tuple[int, int]:
    """The first and last possible request key of batch `seq`."""
    return seq << KEY_BITS, ((seq + 1) << KEY_BITS) - 1


def batch_of(key: int) -> int:
    """The seq of the batch that request `key` belongs to."""
    return key >> KEY_BITS
