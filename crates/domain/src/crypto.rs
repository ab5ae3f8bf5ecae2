//! The cryptography the domain asks for, shared by every concern: password hashing, the secrets
//! Warden hands out and stores only as hashes, signed access tokens, and TOTP.

mod access;
mod ports;
mod secret;

pub use access::*;
pub use ports::*;
pub use secret::*;
