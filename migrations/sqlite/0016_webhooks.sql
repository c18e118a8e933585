-- Webhooks (issue 12): the organiser's `[[webhooks]]` and their durable outbox.
-- A hook is known by a hash of its URL; `since` is when this host first saw it, so a new
-- hook is told what happens from then on, not the campaign's whole past.
CREATE TABLE webhook_hooks (
    hook  TEXT    PRIMARY KEY,
    since INTEGER NOT NULL
);
-- One row per (hook, kind of event, what it is about): the unique key is what makes each
-- event enqueued exactly once, whichever scanner (process) sees it first. `event_id` is
-- drawn once at enqueue time and sent on every attempt (the receiver's idempotency key);
-- `payload` is the exact JSON body, so every attempt sends the same bytes.
CREATE TABLE webhook_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    hook         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    event_id     TEXT    NOT NULL UNIQUE,
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    run_at       INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (hook, kind, subject)
);
CREATE INDEX webhook_events_due ON webhook_events (state, run_at);
