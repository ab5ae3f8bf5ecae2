//! Warden's driven adapters: the implementations of the domain's ports.
//!
//! - [`store`]: the PostgreSQL and SQLite repositories (sqlx).
//! - [`password`]: argon2id password hashing on blocking threads.
//! - [`jwt`]: signing and verifying access tokens (jsonwebtoken).
//! - [`mail`]: sending mail over SMTP (lettre), rendered from templates (minijinja).
//! - [`secret`]: the secrets Warden hands out (refresh, mailed and personal tokens) and their stored hashes.
//! - [`totp`]: TOTP codes, sealed TOTP secrets and recovery codes.
//! - [`throttle`]: brute-force budgets in memory (with PostgreSQL, [`store::SharedThrottle`]).

pub mod jwt;
pub mod mail;
pub mod password;
pub mod secret;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;
pub mod totp;

pub use jwt::{JwtConfig, JwtConfigError, JwtKeys, JwtTokens, PublicKey};
pub use mail::{SmtpConfig, SmtpMailer};
pub use password::Argon2Hasher;
pub use secret::Sha256Secrets;
pub use store::{Backend, SharedThrottle, Store, StoreOptions, sqlite_file};
pub use throttle::MemoryThrottle;
pub use totp::TotpSecrets;
