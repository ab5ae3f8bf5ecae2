-- Two-factor authentication (contract section 10): TOTP factors, recovery codes, and the
-- challenges of password logins waiting for their second step.

-- One factor per user: pending from enrolment until a code confirms it.
CREATE TABLE totp_factors (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The shared secret sealed with XChaCha20-Poly1305 under a key that is not in the
    -- database ("v1." and base64url of nonce and ciphertext); never the secret itself.
    secret         TEXT NOT NULL CHECK (length(secret) <= 200),
    created_at     TEXT NOT NULL,
    confirmed_at   TEXT,
    -- The newest time step (unix time / 30) whose code was accepted: no code of it or of an
    -- earlier step is accepted again (RFC 6238 section 5.2).
    last_used_step INTEGER
) STRICT;

-- Single-use recovery codes, stored as SHA-256 hashes of 80-bit codes.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL CHECK (length(code_hash) <= 64),
    used_at   TEXT,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- A login whose password was right, waiting for its second factor: keyed by the hash of its
-- mfa_token, valid 5 minutes, spent by its use or by 5 wrong codes.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY CHECK (length(token_hash) <= 64),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The scopes and client the finished login gets, as for sessions.
    scopes     TEXT NOT NULL,
    client_id  TEXT NOT NULL CHECK (length(client_id) BETWEEN 1 AND 64),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    spent_at   TEXT
) STRICT;

-- Expired challenges are deleted hourly; an account's go with it.
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);
CREATE INDEX mfa_challenges_user_id_idx ON mfa_challenges (user_id);
