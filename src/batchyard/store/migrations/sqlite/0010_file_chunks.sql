-- On SQLite file bytes stay in the files directory (LocalBlobs): no file_chunks
-- table (PostgreSQL's 0010 adds one; the version is kept in step). Expired files
-- are found (and deleted) by this index.
CREATE INDEX files_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;
