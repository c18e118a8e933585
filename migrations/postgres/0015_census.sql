-- The hashtag census (issue 12): public posts carrying a campaign's hashtag, seen on the
-- Mastodon-API servers, Nostr relays and Bluesky AppView the campaign lists. Only what the
-- figures need is kept: a salted hash of the author (never the handle), the post's time
-- and its hour, the network, and the public link. `post_key` (status URI, event id,
-- AT-URI) recognises one post seen again, on another server or in a later poll.
-- `own`: the author is one of this host's own accounts (picket's participants).
CREATE TABLE census_posts (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign    TEXT    NOT NULL,
    network     TEXT    NOT NULL,
    post_key    TEXT    NOT NULL,
    author_hash TEXT    NOT NULL,
    own         BOOLEAN NOT NULL DEFAULT FALSE,
    posted_at   BIGINT NOT NULL,
    hour        BIGINT NOT NULL,
    link        TEXT,
    seen_at     BIGINT NOT NULL,
    UNIQUE (campaign, post_key)
);
CREATE INDEX census_posts_hour ON census_posts (campaign, hour);
