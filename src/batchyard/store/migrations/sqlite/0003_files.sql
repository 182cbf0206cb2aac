-- Uploaded and generated files (the OpenAI dialect's Files API). The bytes live
-- in the blob store; `blob` is their key there.
CREATE TABLE files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    blob TEXT NOT NULL
);
CREATE INDEX files_workspace ON files (workspace_id, seq);
