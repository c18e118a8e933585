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
-- Planning put each row's jittered `window_end` into this index, a random insert per row
-- that dominated planning a million pledges once the index outgrew the cache. Closed
-- windows are found through the due and lease indexes instead (`expire_missed`).
DROP INDEX outbox_window;
