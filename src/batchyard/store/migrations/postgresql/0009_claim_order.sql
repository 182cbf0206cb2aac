-- Claims take a batch's queued requests by (available_at, key): equally available
-- requests go oldest first, so a request whose lease lapsed is not sent to the back.
-- The key in the index lets a claim read them in that order without sorting.
CREATE INDEX requests_queued_in_order ON requests (batch_seq, available_at, key) WHERE state = 0;
DROP INDEX requests_queued;
