-- Batches and their requests (the same model as the SQLite store).
-- A request's key is (batch seq << 17) | index: a batch is one key range.
CREATE TABLE batches (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    dialect TEXT NOT NULL DEFAULT 'anthropic',
    processing_status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    archive_at DOUBLE PRECISION NOT NULL,
    cancel_initiated_at DOUBLE PRECISION,
    ended_at DOUBLE PRECISION,
    archived_at DOUBLE PRECISION,
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
CREATE TABLE requests (
    key BIGINT PRIMARY KEY,
    batch_seq BIGINT NOT NULL,
    custom_id TEXT NOT NULL,
    params BYTEA,
    state SMALLINT NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    lease_until DOUBLE PRECISION,
    worker TEXT,
    result BYTEA,
    finished_at DOUBLE PRECISION
);
CREATE INDEX requests_queued ON requests (batch_seq, available_at) WHERE state = 0;
CREATE INDEX requests_claimed ON requests (lease_until) WHERE state = 1;
