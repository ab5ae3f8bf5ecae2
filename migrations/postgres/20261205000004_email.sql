-- Email (contract section 12): verified addresses, emailed single-use tokens, and the outbox.

-- Whether the account's address was shown to receive mail. Existing accounts start unverified.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE email_tokens (
    -- SHA-256 of the token (256 random bits), base64url; never the token.
    token_hash TEXT PRIMARY KEY CHECK (length(token_hash) <= 64),
    -- Deleting a user deletes their tokens.
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- password_reset, email_verification or email_change.
    purpose    TEXT NOT NULL,
    -- The address it concerns: the account's for a reset or a verification, the new one for a
    -- change.
    email      TEXT NOT NULL CHECK (length(email) <= 254),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

-- A user's tokens, to spend the other reset tokens with one.
CREATE INDEX email_tokens_user_id_idx ON email_tokens (user_id);
-- For pruning the expired.
CREATE INDEX email_tokens_expires_at_idx ON email_tokens (expires_at);

-- Mails waiting to be sent. A row is written in the transaction of the change that causes the
-- mail, and deleted once the mail is sent or given up, so the table holds only pending mail.
CREATE TABLE mail_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- password_reset, email_verification, email_change or email_change_notice.
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL CHECK (length(recipient) <= 254),
    -- The token the mail carries, until it is sent; NULL for a notice.
    token           TEXT,
    -- Attempts so far; a worker counts one when it takes the mail.
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When it is due: now, after a failure the backoff's end, while a worker holds it the end
    -- of its lease.
    next_attempt_at TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at, id);
