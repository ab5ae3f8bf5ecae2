-- Where each session began and when it was last used, for the list of a user's sessions
-- (contract section 9), and what its access tokens say about their login (section 3).

-- The OAuth2 client of the login (RFC 9068 `client_id`): 1 to 64 visible ASCII characters,
-- checked by the application; 'warden' when the token request named none.
ALTER TABLE sessions ADD COLUMN client_id TEXT NOT NULL DEFAULT 'warden'
    CHECK (length(client_id) BETWEEN 1 AND 64);
-- The login's User-Agent, without control characters, at most 256 characters.
ALTER TABLE sessions ADD COLUMN user_agent TEXT CHECK (length(user_agent) <= 256);
-- The login's client address, as text (IPv4 or IPv6).
ALTER TABLE sessions ADD COLUMN ip_address TEXT CHECK (length(ip_address) <= 45);
-- How the login was authenticated (RFC 8176 `amr` values, space-separated).
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd' CHECK (amr IN ('pwd', 'pwd otp'));
-- Moved by every refresh, and by requests when it lags more than a minute. SQLite cannot add a
-- NOT NULL column without a constant default: the application always writes it, and reads a
-- missing one (a session an instance of the previous release inserted during a rolling upgrade)
-- as the session's creation.
ALTER TABLE sessions ADD COLUMN last_used_at TEXT;
UPDATE sessions SET last_used_at = created_at;
