-- Refresh tokens, and the scopes a session was granted (the most a refresh may hand out).

-- Sessions made before this migration had no refresh tokens, so their scopes never matter.
ALTER TABLE sessions ADD COLUMN scopes TEXT NOT NULL DEFAULT '';

CREATE TABLE refresh_tokens (
    -- SHA-256 of the secret the client holds (base64url). The secret itself is never stored.
    token_hash TEXT PRIMARY KEY,
    -- Ending or deleting a session ends its refresh tokens with it.
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    -- Set when the token is used. A spent token presented again means theft: the session ends.
    spent_at   TEXT
) STRICT;

-- The cascade from sessions.
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
