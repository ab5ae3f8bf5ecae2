-- The security event log (contract section 11): what happened to an account, when and from
-- where. Written in the same transaction as the change it records, deleted after
-- EVENT_RETENTION_DAYS.

CREATE TABLE security_events (
    -- Keyset paging goes by id (newest first), so ids grow with time and are never reused
    -- (AUTOINCREMENT).
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- An account's events go with the account.
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- One of the contract's names (`login`, `mfa_enabled`, ...), checked by the application.
    type       TEXT    NOT NULL CHECK (length(type) BETWEEN 1 AND 40),
    at         TEXT    NOT NULL,
    -- Where the request that caused it came from, as for sessions; null when unknown.
    ip_address TEXT    CHECK (length(ip_address) <= 45),
    user_agent TEXT    CHECK (length(user_agent) <= 256),
    -- The session it concerns (opened, ended, or acted from), 16 bytes; no foreign key, so that
    -- the event outlives the session.
    session_id BLOB    CHECK (length(session_id) = 16)
) STRICT;

-- A user's events, newest first, and an admin's listing filtered by user.
CREATE INDEX security_events_user_id_idx ON security_events (user_id, id);
-- Retention deletes by time.
CREATE INDEX security_events_at_idx ON security_events (at);
