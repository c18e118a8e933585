-- Dispatching workers and their heartbeats (issue 14): a post leased to a worker whose
-- heartbeat stopped is taken over at once instead of when its lease runs out, so a lease
-- only guards a post against live workers.
CREATE TABLE workers (
    name         TEXT    PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
