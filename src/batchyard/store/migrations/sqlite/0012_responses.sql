-- Stored objects of the OpenAI Responses API. `body`: the Response object's JSON as
-- answered; `input_items`: a JSON array of its input items (each with an "id").
-- Read and deleted by (id, workspace_id): another workspace's id is not found.
CREATE TABLE responses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    body BLOB NOT NULL,
    input_items BLOB NOT NULL,
    previous_response_id TEXT
);
CREATE INDEX responses_workspace ON responses (workspace_id, seq);
