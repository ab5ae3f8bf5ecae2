-- Brute-force budgets shared by every instance on this database (contract section 2): one row
-- per counted key (a failed-login username or address, a registering address), keyed by a
-- SHA-256 of its kind and subject, so that no username or address is kept in the clear.
--
-- `tat` is GCRA's theoretical arrival time: each counted event moves it one interval past
-- max(now, tat); a key has run out while it runs more than (max - 1) intervals ahead of now.
-- A row whose tat has passed has its whole budget back, as if absent: pruning deletes it.
--
-- PostgreSQL only: SQLite serves one instance, which keeps its budgets in memory.
--
-- UNLOGGED: the counts are worth no WAL. A failed-login flood then writes no log, and the
-- counts start again empty after a crash or on a promoted replica, which costs an attacker's
-- budget nothing more than a restart of one instance would.
CREATE UNLOGGED TABLE throttle_keys (
    key_hash BYTEA PRIMARY KEY CHECK (octet_length(key_hash) = 32),
    tat TIMESTAMPTZ NOT NULL
);

-- Pruning finds the passed rows without a scan.
CREATE INDEX throttle_keys_tat ON throttle_keys (tat);
