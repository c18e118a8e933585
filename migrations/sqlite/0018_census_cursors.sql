-- Where the hashtag census's reading of each source stands (issue 12): a status id, a Unix
-- time or an instant, as the source's reader gave it. Kept so a restarted picket (or
-- another process taking the census lease) reads on from there instead of from the
-- start of what the source still serves. Saved only once what it covers is stored.
CREATE TABLE census_cursors (
    campaign   TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    cursor     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (campaign, source)
);
