//! What the settings build: each group makes its own adapters and domain values, so that the
//! composition root ([`crate::api::state`]) reads no raw setting. Builders that need more than
//! one group (the signing keys look at the database URL, the mailer at `PUBLIC_URL`) are
//! methods of [`Config`].

use std::time::Duration;

use chrono::TimeDelta;
use secrecy::ExposeSecret;
use warden_adapters::{Argon2Hasher, JwtConfig, JwtTokens, StoreOptions, TotpSecrets};
use warden_domain::{events::EventRetention, sessions::Lifetimes};

use super::{
    AccountConfig, Config, DatabaseConfig, PasswordConfig, SecretSource, ServerConfig, TokenConfig,
    resolve_jwt_keys, resolve_mfa_key,
};
use crate::cors::CorsOrigins;

impl Config {
    /// The access-token signer and verifier, and where its keys came from.
    ///
    /// # Errors
    ///
    /// The keys cannot be had or do not parse (see [`resolve_jwt_keys`]).
    pub fn access_tokens(&self) -> anyhow::Result<(JwtTokens, SecretSource)> {
        let (keys, source) = resolve_jwt_keys(self)?;
        let tokens = JwtTokens::new(&JwtConfig {
            keys,
            issuer: self.tokens.jwt_issuer.clone(),
            audience: self.tokens.jwt_audience.clone(),
            access_token_lifetime: self.access_token_lifetime(),
            leeway: Duration::from_secs(self.tokens.jwt_leeway_seconds),
        })?;
        Ok((tokens, source))
    }

    /// What seals TOTP secrets and checks codes.
    ///
    /// # Errors
    ///
    /// There is no key to seal with (see [`resolve_mfa_key`]).
    pub fn totp_codec(&self) -> anyhow::Result<TotpSecrets> {
        TotpSecrets::new(resolve_mfa_key(self)?.expose_secret())
    }
}

impl SecretSource {
    /// Says at start where the signing keys came from; a warning when tokens will not survive
    /// a restart.
    pub fn log(&self) {
        match self {
            Self::Configured => {}
            Self::KeyFile(path) => {
                tracing::info!(path = %path.display(), "signing tokens with EdDSA");
            }
            Self::File {
                path,
                created: true,
            } => tracing::info!(
                path = %path.display(),
                "generated a JWT signing secret; set JWT_SECRET to use your own"
            ),
            Self::File {
                path,
                created: false,
            } => {
                tracing::info!(path = %path.display(), "using the JWT signing secret kept in a file");
            }
            Self::Ephemeral => tracing::warn!(
                "in-memory database and no JWT_SECRET: tokens will not survive a restart"
            ),
        }
    }
}

impl DatabaseConfig {
    /// The connection pool's settings.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.max_connections,
            transaction_pooling: self.transaction_pooling,
            ..StoreOptions::default()
        }
    }
}

impl PasswordConfig {
    /// The argon2id hasher, with its concurrency and queue bounds.
    ///
    /// # Errors
    ///
    /// The bounds are unusable.
    pub fn hasher(&self) -> anyhow::Result<Argon2Hasher> {
        Argon2Hasher::new(self.hash_concurrency(), self.hash_queue())
    }
}

impl TokenConfig {
    /// How long a login's session and its refresh tokens last.
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            session: TimeDelta::days(self.session_lifetime_days.into()),
            refresh_token: TimeDelta::days(self.refresh_token_expire_days.into()),
        }
    }
}

impl AccountConfig {
    /// How long security events (and ended sessions and tokens) are kept.
    pub fn event_retention(&self) -> EventRetention {
        EventRetention::days(self.event_retention_days)
    }
}

impl ServerConfig {
    /// The origins CORS allows.
    ///
    /// # Errors
    ///
    /// An origin is not one (a path, a wildcard with credentials...).
    pub fn cors_origins(&self) -> anyhow::Result<CorsOrigins> {
        CorsOrigins::new(&self.cors_allowed_origins)
    }

    /// How long after its head a request's body may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.http_body_timeout_seconds)
    }
}
