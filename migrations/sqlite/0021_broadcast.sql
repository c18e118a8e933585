-- Broadcast channels (issue 11): the campaign's own announcements, one row per (channel,
-- campaign, announcement, instant), written when it falls due and before anything is sent.
-- The unique key makes each announcement enqueued once whichever process sees it first;
-- `txn_id` is drawn at enqueue time and sent on every attempt (Matrix's transaction id, so
-- a retry is the same event); `body` is the text rendered once with the counts of that
-- moment, so every attempt sends the same words. `state`: pending, sent, failed, missed,
-- or unknown (an answer lost on a channel with no way to ask whether it arrived).
CREATE TABLE broadcast_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    channel       TEXT    NOT NULL,
    campaign_id   TEXT    NOT NULL,
    announcement  TEXT    NOT NULL,
    slot_at       INTEGER NOT NULL,
    not_after     INTEGER NOT NULL,
    txn_id        TEXT    NOT NULL UNIQUE,
    body          TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at        INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    -- 1 when the last claim found an earlier claim's lease run out without an outcome
    -- (its process died mid-attempt): on a channel without idempotency it may have arrived.
    interrupted   INTEGER NOT NULL DEFAULT 0,
    remote_id     TEXT,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (channel, campaign_id, announcement, slot_at)
);
CREATE INDEX broadcast_messages_due ON broadcast_messages (state, run_at);
