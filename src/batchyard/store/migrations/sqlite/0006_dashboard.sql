-- The dashboard lists a workspace's batches with the OpenAI id of those made
-- through the OpenAI Batch API: a lookup by batch id for every row shown.
CREATE INDEX openai_batches_batch ON openai_batches (batch_id);
