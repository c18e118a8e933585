-- Issue 14: planning (millions of pending rows) and the dispatcher's state changes write to
-- fewer outbox indexes: two hold only the rows they are read for, one is gone.
--
-- Only a reminder's "I posted it" token is looked up, always by its value (`= $n`
-- implies NOT NULL, so both databases use the partial index); pending rows have none.
DROP INDEX outbox_confirm_token;
CREATE UNIQUE INDEX outbox_confirm_token ON outbox (confirm_token_hash)
    WHERE confirm_token_hash IS NOT NULL;
-- The engagement task reads newly published posts by time; keying on the state made
-- every claim and send move the row's entry.
DROP INDEX outbox_published;
CREATE INDEX outbox_published ON outbox (published_at) WHERE state = 'published';
-- Planning put each row's jittered `window_end` into this index, a random insert per row,
-- costly once the index outgrows the cache (a million pledges make 8 million rows). Closed
-- windows are found through the due and lease indexes instead (`expire_missed`), and
-- through this one for the few pending rows whose outcome is unknown, which may wait to be
-- read back after their due bucket.
DROP INDEX outbox_window;
CREATE INDEX outbox_unknown ON outbox (window_end)
    WHERE state = 'pending' AND outcome_unknown;
