-- Batches and their requests.
-- A request's key is (batch seq << 17) | index: requests of one batch are one
-- contiguous range of the clustered rowid, and 2^17 > 100,000 requests.
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    dialect TEXT NOT NULL DEFAULT 'anthropic',
    processing_status TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    archive_at REAL NOT NULL,
    cancel_initiated_at REAL,
    ended_at REAL,
    archived_at REAL,
    total INTEGER NOT NULL,
    processing INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    errored INTEGER NOT NULL DEFAULT 0,
    canceled INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX batches_workspace_seq ON batches (workspace_id, seq);
CREATE INDEX batches_status ON batches (processing_status, seq);
CREATE INDEX batches_unarchived ON batches (archive_at) WHERE archived_at IS NULL;

-- state: 0 queued, 1 claimed, 2 succeeded, 3 errored, 4 canceled, 5 expired.
-- `result` holds the whole JSONL results line of a succeeded/errored request.
CREATE TABLE requests (
    key INTEGER PRIMARY KEY,
    batch_seq INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    params BLOB,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at REAL NOT NULL DEFAULT 0,
    lease_until REAL,
    worker TEXT,
    result BLOB,
    finished_at REAL
);
CREATE INDEX requests_queued ON requests (batch_seq, available_at) WHERE state = 0;
CREATE INDEX requests_claimed ON requests (lease_until) WHERE state = 1;
