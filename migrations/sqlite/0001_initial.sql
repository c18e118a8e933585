-- picket schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql:
-- same tables, columns and version numbers; only types and partial-index syntax differ.
-- Instants are INTEGER milliseconds since the Unix epoch (UTC), bound by the application.

CREATE TABLE participants (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    email             TEXT,
    email_canonical   TEXT,
    tz                TEXT    NOT NULL,
    is_local          BOOLEAN NOT NULL DEFAULT 0,
    access_token_hash TEXT UNIQUE,
    invite_code       TEXT    NOT NULL UNIQUE,
    created_at        INTEGER NOT NULL
);
-- At most one participant is "the person running the CLI".
CREATE UNIQUE INDEX participants_one_local ON participants (is_local) WHERE is_local = 1;
CREATE INDEX participants_email ON participants (email_canonical);

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    participant_id INTEGER NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    network        TEXT    NOT NULL,
    handle         TEXT    NOT NULL,
    server         TEXT,
    credentials    BLOB    NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'active',
    status_reason  TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX accounts_participant ON accounts (participant_id);

CREATE TABLE pledges (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    participant_id INTEGER NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    campaign_id    TEXT    NOT NULL,
    tz             TEXT    NOT NULL,
    days           TEXT,
    every_secs     INTEGER,
    status         TEXT    NOT NULL DEFAULT 'active',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    withdrawn_at   INTEGER,
    UNIQUE (participant_id, campaign_id)
);
CREATE INDEX pledges_campaign ON pledges (campaign_id, status, id);

CREATE TABLE pledge_accounts (
    pledge_id  INTEGER NOT NULL REFERENCES pledges (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (pledge_id, account_id)
);
CREATE INDEX pledge_accounts_account ON pledge_accounts (account_id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id     TEXT    NOT NULL,
    pledge_id       INTEGER NOT NULL REFERENCES pledges (id) ON DELETE CASCADE,
    account_id      INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    slot_key        TEXT    NOT NULL,
    post_name       TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    variant         INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    run_at          INTEGER NOT NULL,
    window_end      INTEGER NOT NULL,
    -- The slot's own instant (before jitter) and which strike day it belongs to: the
    -- post text says "day 2 of 2" and shows the local date of the slot.
    slot_at         INTEGER NOT NULL,
    day             INTEGER NOT NULL DEFAULT 0,
    days_total      INTEGER NOT NULL DEFAULT 0,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    outcome_unknown BOOLEAN NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    remote_id       TEXT,
    remote_url      TEXT,
    published_at    INTEGER,
    text            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- Guarantee 1 ("never twice") starts here: one row per account and campaign slot.
    UNIQUE (account_id, campaign_id, slot_key)
);
CREATE INDEX outbox_due ON outbox (state, run_at);
CREATE INDEX outbox_lease ON outbox (state, lease_until);
CREATE INDEX outbox_pledge ON outbox (pledge_id, state);
CREATE INDEX outbox_campaign ON outbox (campaign_id, state);

CREATE TABLE signatures (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id     TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    email_canonical TEXT,
    public          BOOLEAN NOT NULL,
    invited_by      TEXT,
    invite_code     TEXT    NOT NULL UNIQUE,
    confirmed       BOOLEAN NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    -- One person counts once per campaign (NULL e-mails are distinct in both databases).
    UNIQUE (campaign_id, email_canonical)
);
CREATE INDEX signatures_public ON signatures (campaign_id, public, id);
CREATE INDEX signatures_invited_by ON signatures (campaign_id, invited_by);

CREATE TABLE campaign_state (
    campaign_id  TEXT PRIMARY KEY,
    cancelled_at INTEGER,
    reason       TEXT
);
