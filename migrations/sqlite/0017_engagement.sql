-- Engagement and reach of published notices (issue 12, point 5). One row per published
-- post of a network whose counts picket reads (Mastodon API, Bluesky, Nostr): read once
-- some time after posting and once more later. Counts are NULL until a read succeeds;
-- `followers` stays NULL where the network has no follower count (Nostr). `error` is the
-- last read's failure in picket's own words; `next_read_at` NULL means nothing more will
-- be read. The row goes with its outbox row (an account removed, data deleted).
CREATE TABLE post_engagement (
    outbox_id    INTEGER PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    campaign     TEXT    NOT NULL,
    network      TEXT    NOT NULL,
    followers    INTEGER,
    likes        INTEGER,
    reposts      INTEGER,
    replies      INTEGER,
    reads        INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    next_read_at INTEGER,
    read_at      INTEGER
);
CREATE INDEX post_engagement_due ON post_engagement (next_read_at);
CREATE INDEX post_engagement_campaign ON post_engagement (campaign, network);
-- The engagement task looks for newly published posts every round: by state and time.
CREATE INDEX outbox_published ON outbox (state, published_at);
