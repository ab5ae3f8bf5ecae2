//! The cryptography the domain asks for: password hashing, the secrets Warden hands out,
//! access tokens and TOTP. Implementations are in the adapters crate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    accounts::{Password, PasswordHash},
    crypto::{AccessClaims, AccessGrant, InvalidTokenError, IssuedToken, SecretHash},
    mfa::{RecoveryCodeHash, RecoveryCodes, SealedTotpSecret, TotpEnrolment, TotpSecret},
};

/// Hashes and checks passwords. Implementations are deliberately slow; they must not block the
/// async executor.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A fresh salted hash of `password`.
    ///
    /// # Errors
    ///
    /// The hasher failed or is overloaded (marked [`Unavailable`](crate::error::Unavailable): retry shortly).
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash>;

    /// Whether `candidate` matches `hash`.
    ///
    /// # Errors
    ///
    /// A hash that cannot be parsed; otherwise as [`PasswordHasher::hash`].
    async fn verify_password(
        &self,
        candidate: &Password,
        hash: &PasswordHash,
    ) -> anyhow::Result<bool>;

    /// Does the same work as [`PasswordHasher::verify_password`] against a hash of no real account, and
    /// throws the answer away. Login calls it when there is no hash to check, so that unknown
    /// accounts take as long to refuse as wrong passwords.
    ///
    /// # Errors
    ///
    /// As [`PasswordHasher::hash`].
    async fn verify_dummy(&self, candidate: &Password) -> anyhow::Result<()>;
}

/// Makes the secrets Warden hands out and recognises later (refresh tokens, `mfa_token`s, mailed
/// tokens, personal access tokens): opaque random secrets for clients, and the hashes stored in
/// their place.
#[cfg_attr(test, mockall::automock)]
pub trait SecretCodec: Send + Sync + 'static {
    /// A new secret (at least 256 random bits) and its hash.
    fn generate(&self) -> (String, SecretHash);

    /// The hash of a secret a client presents.
    fn hash(&self, presented: &str) -> SecretHash;
}

/// Signs access tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenIssuer: Send + Sync + 'static {
    /// A signed access token for `grant`, valid from now for the configured lifetime.
    ///
    /// # Errors
    ///
    /// Signing failed: a bug or a broken key.
    async fn issue(&self, grant: &AccessGrant) -> anyhow::Result<IssuedToken>;
}

/// Checks access tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// The claims of `token` if its signature, algorithm, type, issuer, audience and validity
    /// period all check out.
    ///
    /// # Errors
    ///
    /// [`InvalidTokenError`] with the reason (for logs, never for clients).
    async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, InvalidTokenError>;
}

/// TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew either way) and
/// recovery codes: making secrets, sealing them for storage, and checking codes.
#[cfg_attr(test, mockall::automock)]
pub trait TotpCodec: Send + Sync + 'static {
    /// A new random secret (160 bits, as RFC 4226 recommends).
    fn generate_secret(&self) -> TotpSecret;

    /// `secret` encrypted for storage.
    ///
    /// # Errors
    ///
    /// Encryption failed: a bug.
    fn seal(&self, secret: &TotpSecret) -> anyhow::Result<SealedTotpSecret>;

    /// The secret `sealed` holds.
    ///
    /// # Errors
    ///
    /// It was sealed with another key, or is corrupt.
    fn open(&self, sealed: &SealedTotpSecret) -> anyhow::Result<TotpSecret>;

    /// What an authenticator app needs: the base32 secret, the `otpauth://` URI (issuer
    /// `Warden`, account `account`) and its QR code as SVG.
    ///
    /// # Errors
    ///
    /// The URI or the QR code could not be made: a bug.
    fn enrolment(&self, secret: &TotpSecret, account: &str) -> anyhow::Result<TotpEnrolment>;

    /// The time step (seconds since the epoch / 30) `code` belongs to, if it is a valid code of
    /// `secret` at `now`, give or take one step.
    fn matching_step(&self, secret: &TotpSecret, code: &str, now: DateTime<Utc>) -> Option<i64>;

    /// A new set of [`RecoveryCodes::COUNT`] recovery codes (80 random bits each) with their
    /// hashes.
    fn generate_recovery_codes(&self) -> RecoveryCodes;

    /// The hash of a recovery code as a user types it (case, spaces and dashes do not matter).
    fn hash_recovery_code(&self, code: &str) -> RecoveryCodeHash;
}
