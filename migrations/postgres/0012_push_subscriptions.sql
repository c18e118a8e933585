-- Web Push reminders (issue 10): the browsers a participant asked to be reminded in.
-- A subscription's endpoint is a capability URL (whoever has it can push to that browser),
-- so the endpoint and the browser's keys are sealed with the credentials key (purpose
-- "push subscription"); `endpoint_hash` (SHA-256, hex) recognises the same browser again.
-- One browser belongs to one participant: the last one who subscribed in it.
CREATE TABLE push_subscriptions (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    participant_id BIGINT  NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    endpoint_hash  TEXT    NOT NULL UNIQUE,
    sealed         BYTEA   NOT NULL,
    created_at     BIGINT  NOT NULL,
    -- Why the last push failed (never the endpoint), NULL after a delivered one.
    last_error     TEXT
);
CREATE INDEX push_subscriptions_participant ON push_subscriptions (participant_id);
