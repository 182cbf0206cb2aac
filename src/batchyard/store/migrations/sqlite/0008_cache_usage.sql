-- Prompt caching in the usage counters: tokens read from the cache and tokens
-- newly cached at a cache_control breakpoint (by ttl). input_tokens stays the
-- uncached rest, as the hosted usage report's uncached_input_tokens.
ALTER TABLE usage ADD COLUMN cache_read_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN cache_creation_5m_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN cache_creation_1h_input_tokens BIGINT NOT NULL DEFAULT 0;
