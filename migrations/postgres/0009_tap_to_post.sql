-- Tap-to-post (issue 10). An account's route says who makes the final tap: 'api' (picket
-- publishes with the stored credentials) or 'tap' (picket renders the notice, makes a
-- prefilled compose link and reminds the person, who posts it). Tap accounts store no
-- credentials: their `credentials` blob is empty.
ALTER TABLE accounts ADD COLUMN route TEXT NOT NULL DEFAULT 'api';
-- A tap notice is `reminded` once its text is rendered at its minute (`text` holds it);
-- `posted_by_hand` once the person says they posted it, with the post's address if given.
ALTER TABLE outbox ADD COLUMN reminded_at BIGINT;
ALTER TABLE outbox ADD COLUMN confirmed_at BIGINT;
ALTER TABLE outbox ADD COLUMN confirmed_url TEXT;
-- SHA-256 (hex) of the single-purpose token in the reminder mail's "I posted it" link.
ALTER TABLE outbox ADD COLUMN confirm_token_hash TEXT;
CREATE UNIQUE INDEX outbox_confirm_token ON outbox (confirm_token_hash);
-- One reminder mail per pledge and slot, ever: the row is written before the mail is
-- handed to the SMTP server (at most once: a crash in between loses that mail, it never
-- doubles it; the participant's page and calendar still show the notice).
CREATE TABLE reminder_mails (
    pledge_id BIGINT NOT NULL REFERENCES pledges (id) ON DELETE CASCADE,
    slot_key  TEXT    NOT NULL,
    marked_at BIGINT NOT NULL,
    PRIMARY KEY (pledge_id, slot_key)
);
