-- Accounts and login sessions.
--
-- STRICT tables make SQLite enforce column types as PostgreSQL does. Times are RFC 3339 UTC text
-- written by the application (sqlx's chrono encoding), so both databases store the same instants.

CREATE TABLE users (
    -- AUTOINCREMENT: an id is never handed out twice, even after the newest user is deleted,
    -- so a stale reference can never point at somebody else.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The address as the user spelled it (trimmed).
    email         TEXT    NOT NULL CHECK (length(email) <= 254),
    -- The lower-cased address: emails are unique case-insensitively.
    email_key     TEXT    NOT NULL UNIQUE,
    -- An argon2id PHC string; never the password.
    password_hash TEXT    NOT NULL,
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    created_at    TEXT    NOT NULL
) STRICT;

CREATE TABLE sessions (
    -- A random UUID, 16 bytes.
    id         BLOB    PRIMARY KEY CHECK (length(id) = 16),
    -- Deleting a user deletes their sessions, which ends their tokens.
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    revoked_at TEXT
) STRICT;

-- Ending all sessions of a user (password change, disabling) looks them up by user.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
