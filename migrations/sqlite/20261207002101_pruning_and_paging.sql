-- What pruning and paging need (contract section 5, "Account safety"): ended and expired
-- sessions, spent and expired refresh tokens, and revoked and expired personal tokens are
-- deleted after EVENT_RETENTION_DAYS, and the lists of a user's sessions and tokens page
-- newest first.

-- Pruning finds sessions by when they ended or expire. Only ended sessions have a revoked_at.
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
-- A user's sessions, newest first (ties by id), for their list and its pages; it also serves
-- every lookup by user that the index it replaces served.
CREATE INDEX sessions_user_id_created_at_idx ON sessions (user_id, created_at, id);
DROP INDEX sessions_user_id_idx;

-- Pruning finds refresh tokens by when they were spent or expire. Only spent ones have a
-- spent_at.
CREATE INDEX refresh_tokens_spent_at_idx ON refresh_tokens (spent_at) WHERE spent_at IS NOT NULL;
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);

-- Pruning finds personal tokens by when they were revoked or expire.
CREATE INDEX personal_tokens_revoked_at_idx ON personal_tokens (revoked_at)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX personal_tokens_expires_at_idx ON personal_tokens (expires_at);
-- A user's tokens, newest (highest id) first, for their list and its pages, and for counting
-- them against MAX_PERSONAL_TOKENS.
CREATE INDEX personal_tokens_user_id_id_idx ON personal_tokens (user_id, id);
DROP INDEX personal_tokens_user_id_idx;
