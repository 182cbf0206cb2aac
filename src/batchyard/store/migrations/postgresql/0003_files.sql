-- Uploaded and generated files (the OpenAI dialect's Files API). The bytes live
-- in the blob store; `blob` is their key there.
CREATE TABLE files (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    blob TEXT NOT NULL
);
CREATE INDEX files_workspace ON files (workspace_id, seq);
