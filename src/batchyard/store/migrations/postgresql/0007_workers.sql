-- Every worker writes how it is doing every few seconds; the dashboard lists them.
-- `engines`: JSON list of {"name", "capacity", "in_use", "waiting"}.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    stopped_at DOUBLE PRECISION,
    in_flight INTEGER NOT NULL,
    processed BIGINT NOT NULL,
    engines TEXT NOT NULL
);
