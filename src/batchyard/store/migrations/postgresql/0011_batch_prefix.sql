-- Each batch's most common prompt-prefix key (a signed 64-bit hash of the model,
-- tools and the prompt's first bytes, up to its first cache_control mark): claims
-- run batches that start alike together, so an engine's prefix cache serves them.
-- NULL (batches from before): each such batch is a group of its own.
ALTER TABLE batches ADD COLUMN prefix BIGINT;
