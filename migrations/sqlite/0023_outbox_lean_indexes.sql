-- Issue 14: the outbox's indexes cost less to write, for planning (millions of inserts) and
-- for dispatch (three state changes per post).
--
-- Due rows are found by a coarse bucket of `run_at` (10 s) and only while pending: entries
-- of one bucket are in rowid order, so planning appends to a few hot pages instead of
-- landing all over an index sorted by the jittered instant, and a row leaves the index
-- once claimed. The claim checks the exact `run_at` on the row.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (run_at / 10000) WHERE state = 'pending';
-- Only claimed and sending rows hold a lease.
DROP INDEX outbox_lease;
CREATE INDEX outbox_lease ON outbox (lease_until) WHERE state IN ('claimed', 'sending');
-- Only unsent rows can be missed.
DROP INDEX outbox_window;
CREATE INDEX outbox_window ON outbox (window_end)
    WHERE state IN ('pending', 'claimed', 'sending');
-- A pledge has a few rows: the state is checked on them, not kept in the index.
DROP INDEX outbox_pledge;
CREATE INDEX outbox_pledge ON outbox (pledge_id);
-- The latest failures (admin) were found through the state indexes dropped above.
CREATE INDEX outbox_failures ON outbox (updated_at) WHERE state IN ('failed', 'missed');
