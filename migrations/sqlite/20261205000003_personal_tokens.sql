-- Personal access tokens (contract section 13): long-lived, scoped bearer tokens.

CREATE TABLE personal_tokens (
    -- Never reused: a revoked token's id never names another.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Deleting a user deletes their tokens, which ends them.
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The scopes it was created with, space-separated.
    scopes       TEXT NOT NULL,
    -- SHA-256 of the token (wdn_pat_ and 256 random bits), base64url; never the token.
    token_hash   TEXT NOT NULL UNIQUE CHECK (length(token_hash) <= 64),
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    -- Moved by requests when it lags more than a minute.
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;

-- A user's tokens, for listing them.
CREATE INDEX personal_tokens_user_id_idx ON personal_tokens (user_id);
