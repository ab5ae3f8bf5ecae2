-- Accounts and login sessions.

CREATE TABLE users (
    -- An identity column never hands out an id twice, even after deletes.
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The address as the user spelled it (trimmed).
    email         TEXT        NOT NULL CHECK (length(email) <= 254),
    -- The lower-cased address (lower-cased by the application, so that SQLite and PostgreSQL
    -- agree on non-ASCII letters): emails are unique case-insensitively.
    email_key     TEXT        NOT NULL UNIQUE,
    -- An argon2id PHC string; never the password.
    password_hash TEXT        NOT NULL,
    is_active     BOOLEAN     NOT NULL DEFAULT TRUE,
    is_admin      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    id         UUID        PRIMARY KEY,
    -- Deleting a user deletes their sessions, which ends their tokens.
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Ending all sessions of a user (password change, disabling) looks them up by user.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
