//! The `warden` app: the HTTP API (poem + poem-openapi), its configuration, and the wiring of
//! domain services to adapters. `main.rs` only parses the command line and calls in here, so
//! tests drive the very same route tree.

pub mod api;
pub mod cli;
pub mod config;
pub mod cors;
pub mod metrics;
pub mod security_headers;
pub mod server;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;

pub use api::state::AppState;
pub use server::{app, serve};
