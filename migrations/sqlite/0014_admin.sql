-- The organiser area (issue 12). The operator's password or token, as an Argon2 PHC
-- string (one row: `picket admin` replaces it), and the browser sessions it started, of
-- which only the SHA-256 (hex) of the token is kept.
CREATE TABLE admin_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    phc    TEXT    NOT NULL,
    set_at INTEGER NOT NULL
);
CREATE TABLE admin_sessions (
    token_hash TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- "The organisers may e-mail me": off unless the signer ticked it. Exports give an
-- address only for signers with this set.
ALTER TABLE signatures ADD COLUMN email_consent BOOLEAN NOT NULL DEFAULT 0;
