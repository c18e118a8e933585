-- E-mail confirmation of signatures. Until now every stored signature counted, whatever
-- `confirmed` said: keep them all counted.
UPDATE signatures SET confirmed = TRUE;
-- The SHA-256 (hex) of the confirmation link's token; the token itself is only in the mail.
ALTER TABLE signatures ADD COLUMN confirm_token_hash TEXT;
-- When the last confirmation mail was handed to the SMTP server (re-sends are rate-limited).
ALTER TABLE signatures ADD COLUMN confirm_sent_at BIGINT;
CREATE UNIQUE INDEX signatures_confirm_token ON signatures (confirm_token_hash);
