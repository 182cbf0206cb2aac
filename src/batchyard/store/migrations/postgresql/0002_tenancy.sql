-- Workspaces, API keys (hashed) and hourly usage counters.
CREATE TABLE workspaces (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    display_color TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    archived_at DOUBLE PRECISION,
    -- Per-workspace rate limits; NULL falls back to the server's defaults.
    requests_per_minute INTEGER,
    batch_requests_per_minute INTEGER,
    batch_queued_requests INTEGER
);
CREATE INDEX workspaces_name ON workspaces (name);

-- The default workspace holds what was created before workspaces existed.
INSERT INTO workspaces (id, name, display_color, created_at)
VALUES ('wrkspc_default', 'Default', '#6C5BB9', extract(epoch from now()));
UPDATE batches SET workspace_id = 'wrkspc_default' WHERE workspace_id = 'default';
ALTER TABLE batches ADD COLUMN api_key_id TEXT;
CREATE INDEX batches_workspace_open ON batches (workspace_id)
    WHERE processing_status != 'ended';

-- `digest` is the SHA-256 of the key: keys are 256-bit random secrets, so a
-- fast hash is enough; the key itself is shown once at creation, never stored.
CREATE TABLE api_keys (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    workspace_id TEXT,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, seq);

-- Usage per hour; service_tier is 'batch' for batch results, 'standard' for
-- interactive calls.
CREATE TABLE usage (
    bucket BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    api_key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    service_tier TEXT NOT NULL,
    requests BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    PRIMARY KEY (bucket, workspace_id, api_key_id, model, service_tier)
);
