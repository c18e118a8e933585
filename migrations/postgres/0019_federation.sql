-- Centerless totals (issue 13): this host's signed checkpoints, one chain per campaign,
-- kept so the chain goes on across restarts; and what each pinned peer last showed.
CREATE TABLE checkpoints (
    campaign_id TEXT    NOT NULL,
    sequence    BIGINT  NOT NULL,
    -- The whole signed note, as served at /c/{id}/checkpoint.
    note        TEXT    NOT NULL,
    -- With distinct_signers_key: the signed HyperLogLog sketch made with this checkpoint.
    sketch      TEXT,
    issued_at   BIGINT  NOT NULL,
    PRIMARY KEY (campaign_id, sequence)
);
-- One row per (campaign, peer address): the status of its last check, and its last good
-- checkpoint note (signed by its pinned key), which the next one must extend.
CREATE TABLE federation_peers (
    campaign_id TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    note        TEXT,
    -- Its signed sketch of the same sequence as `note` (distinct_signers_key), if any.
    sketch      TEXT,
    checked_at  BIGINT  NOT NULL,
    last_ok_at  BIGINT,
    PRIMARY KEY (campaign_id, url)
);
