-- Sign-ins apart from magic links (issue 8). Until now a browser's cookie held the magic
-- link's own token, so a link could never be withdrawn without signing everyone out, and
-- it never expired. Now a link opens a session of its own (a fresh random token in the
-- cookie), a link expires, and a new link replaces the old one.
CREATE TABLE sessions (
    -- SHA-256 (hex) of the cookie's token; the token itself is only in the browser.
    token_hash     TEXT    PRIMARY KEY,
    participant_id INTEGER NOT NULL REFERENCES participants (id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
);
CREATE INDEX sessions_participant ON sessions (participant_id);
-- When the participant's current magic link (`access_token_hash`) stops working.
ALTER TABLE participants ADD COLUMN access_token_expires_at INTEGER;
-- Browsers signed in before this version carry the link's token as their cookie: they stay
-- signed in, as a session of its own, for the 180 days (15552000000 ms) a cookie lasted,
-- counted from joining. The links themselves get the default 7 days (604800000 ms) from
-- joining, so an old link that was never withdrawn stops working now.
INSERT INTO sessions (token_hash, participant_id, created_at, expires_at)
    SELECT access_token_hash, id, created_at, created_at + 15552000000
    FROM participants WHERE access_token_hash IS NOT NULL;
UPDATE participants SET access_token_expires_at = created_at + 604800000
    WHERE access_token_hash IS NOT NULL;
-- Mails to one address per hour (magic links, signature confirmations): a visitor can type
-- anyone's address. Keyed by a hash of the normalised address, never the address.
CREATE TABLE mail_budget (
    address_hash TEXT    PRIMARY KEY,
    window_start INTEGER NOT NULL,
    sent         INTEGER NOT NULL
);
CREATE INDEX mail_budget_window ON mail_budget (window_start);
