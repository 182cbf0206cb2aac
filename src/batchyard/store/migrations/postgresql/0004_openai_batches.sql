-- The OpenAI Batch API's view of a batch. `batch_id` names the batch that runs its
-- requests (dialect 'openai'); it is NULL when the input file failed validation.
CREATE TABLE openai_batches (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    batch_id TEXT,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    metadata TEXT,
    errors TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    failed_at DOUBLE PRECISION,
    output_file_id TEXT,
    error_file_id TEXT,
    finalized_at DOUBLE PRECISION
);
CREATE INDEX openai_batches_workspace ON openai_batches (workspace_id, seq);
CREATE INDEX openai_batches_unfinalized ON openai_batches (batch_id)
    WHERE finalized_at IS NULL AND batch_id IS NOT NULL;
CREATE INDEX batches_workspace_dialect ON batches (workspace_id, dialect, seq);
