-- A batch may carry a callback URL; when it ends, a worker POSTs a signed event.
ALTER TABLE batches ADD COLUMN webhook_url TEXT;
ALTER TABLE batches ADD COLUMN webhook_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN webhook_next_at DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN webhook_done_at DOUBLE PRECISION;
CREATE INDEX batches_webhook_due ON batches (webhook_next_at)
    WHERE webhook_url IS NOT NULL AND webhook_done_at IS NULL;
