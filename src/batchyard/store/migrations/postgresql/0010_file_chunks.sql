-- File bytes in the database (the default on PostgreSQL), so API and worker
-- processes need no shared disk. A blob is its chunks in order: `n` counts from 0,
-- each `data` up to 1 MiB (the last one shorter). Uploads write them in one
-- transaction: a blob is all there or not at all. EXTERNAL: stored out of line
-- uncompressed (compressing 1 MiB chunks costs more CPU than the disk it saves).
CREATE TABLE file_chunks (
    blob TEXT NOT NULL,
    n INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (blob, n)
);
ALTER TABLE file_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
-- Expired files are found (and deleted) by this index.
CREATE INDEX files_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;
