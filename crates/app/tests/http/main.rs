//! The HTTP API as a client sees it, over the real route tree. Every test runs once on SQLite
//! and once on PostgreSQL, through `warden_adapters::on_both_databases!`: with
//! `support::with_app`, a test body takes the app on a fresh database; with
//! `warden_adapters::testing::with_backend`, it takes the backend and makes the app it needs.

mod account;
mod cors;
mod deadline;
mod devices;
mod errors;
mod events;
mod hostile;
mod keys;
mod limits;
mod mail;
mod metrics;
mod mfa;
mod oauth;
mod posts;
mod scopes;
mod security_headers;
mod sessions;
mod support;
mod takeover;
mod throttling;
mod token;
mod tokens;
mod users;
