//! The repository contract: every behaviour the domain relies on, run against both SQLite and
//! PostgreSQL through the same test bodies.
//!
//! One module per port, as in `src/store/`; each runs its tests once per database.

mod support;

mod database;
mod events;
mod mfa;
mod personal_tokens;
mod posts;
mod sessions;
mod users;
mod votes;
