//! Warden's driven adapters: the implementations of the domain's ports.
//!
//! - [`store`]: the PostgreSQL and SQLite repositories (sqlx).
//! - [`password`]: argon2id password hashing on blocking threads.
//! - [`jwt`]: signing and verifying access tokens (jsonwebtoken).

pub mod jwt;
pub mod password;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use jwt::{JwtConfig, JwtConfigError, JwtHs256};
pub use password::Argon2Hasher;
pub use store::{Backend, Store, StoreOptions, sqlite_file};
