//! Settings of the account side: the security event log and second factors.

use anyhow::Context;
use clap::Args;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::{Config, resolve_jwt_secret, secret};

/// The account side: the security event log and second factors.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Accounts")]
pub struct AccountConfig {
    /// How long security events are kept, in days: older ones are never listed, and are
    /// deleted within the hour.
    #[arg(long, env = "EVENT_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub event_retention_days: u32,

    /// How many active sessions one account holds: a login past it ends the least recently
    /// used one. Ended and expired sessions (and spent refresh tokens) are deleted after
    /// `EVENT_RETENTION_DAYS`.
    #[arg(long, env = "MAX_SESSIONS_PER_ACCOUNT", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_sessions_per_account: u32,

    /// How many live personal access tokens one account holds: creating one more is refused
    /// (409). Revoked and expired tokens are deleted after `EVENT_RETENTION_DAYS`.
    #[arg(long, env = "MAX_PERSONAL_TOKENS", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_personal_tokens: u32,

    /// Key material (at least 32 bytes) that TOTP secrets are sealed with in the database.
    /// Unset: derived from the JWT signing secret (`JWT_SECRET`, or with SQLite the generated
    /// one), so rotating that secret then needs this set to the old one first. Required with
    /// PostgreSQL and EdDSA without `JWT_SECRET`.
    #[arg(long, env = "MFA_ENCRYPTION_KEY", hide_env_values = true, value_parser = secret)]
    pub mfa_encryption_key: Option<SecretString>,
}

/// The key material TOTP secrets are sealed with: `MFA_ENCRYPTION_KEY`, else the HS256 signing
/// secret (from which `TotpSecrets` derives a key of its own, so the two never coincide).
///
/// # Errors
///
/// Neither is to be had (PostgreSQL with EdDSA and no `JWT_SECRET`).
pub fn resolve_mfa_key(config: &Config) -> anyhow::Result<SecretSlice<u8>> {
    if let Some(key) = &config.accounts.mfa_encryption_key {
        return Ok(key.expose_secret().as_bytes().to_vec().into());
    }
    resolve_jwt_secret(config)
        .map(|(secret, _)| secret)
        .context(
            "MFA_ENCRYPTION_KEY (at least 32 bytes) is required: there is no JWT_SECRET to derive \
             the key that seals TOTP secrets from",
        )
}
