//! Configuration: command-line flags, which override environment variables, which may come from
//! a `.env` file in the working directory. `.env.example` lists every variable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use warden_adapters::{Backend, JwtKeys, sqlite_file};

use crate::throttle::{Limit, ThrottleConfig};

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "An OAuth2 password-flow service with JWT bearer tokens",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

const EXAMPLES: &str = "\
Examples:
  warden                                     serve on 127.0.0.1:8000 from ./warden.db (SQLite)
  DATABASE_URL=postgres://warden@db/warden JWT_SECRET=... warden migrate
                                             apply pending migrations, then exit
  warden serve --no-migrate                  serve; refuse if the schema is behind
  warden check-config                        validate the configuration, reach the database
                                             (and the mail server, with SMTP_URL)
  warden create-admin --email root@example.com
  warden openapi > openapi.json

Every option can also be set by its environment variable or in ./.env; see .env.example.";

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API (what `warden` does with no command), after applying pending migrations.
    Serve {
        /// Do not migrate: refuse to start if the database's schema is behind this build,
        /// naming the missing migrations (for deployments that run `warden migrate` as a step
        /// of their own).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply the migrations the database has not seen yet, and exit.
    Migrate,
    /// Check the configuration and that the database answers; exit non-zero, saying why, if
    /// not. With email on, also say whether the mail server answers (one that does not is
    /// reported, not refused: mail waits in the outbox). Changes nothing: no migration, no file.
    CheckConfig,
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Make an admin account: create it, with a password read from a prompt (or from standard
    /// input when that is not a terminal), or promote the existing account with that email.
    CreateAdmin {
        /// The admin's email.
        #[arg(long)]
        email: String,
    },
}

/// How access tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with `JWT_SECRET`: simple, but every verifier holds the signing secret.
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519 signatures with `JWT_PRIVATE_KEY_FILE`; others verify with the public keys at
    /// `/.well-known/jwks.json`.
    #[value(name = "EdDSA")]
    EdDsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting, grouped by concern. Secrets (`DATABASE_URL`, which may hold a password, and
/// `JWT_SECRET`) are [`SecretString`]s: they never print, and `--help` never shows their values
/// from the environment.
#[derive(Debug, Clone, Args)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
    #[command(flatten)]
    pub throttling: ThrottleSettings,
    #[command(flatten)]
    pub passwords: PasswordConfig,
    #[command(flatten)]
    pub accounts: AccountConfig,
    #[command(flatten)]
    pub mail: MailConfig,
}

/// The database.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`. The default is a SQLite file in the working
    /// directory, created and migrated on start.
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = "sqlite://warden.db",
          hide_env_values = true, value_parser = secret)]
    pub url: SecretString,

    /// Size of the database connection pool.
    #[arg(long = "database-max-connections", env = "DATABASE_MAX_CONNECTIONS",
          default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Set when `DATABASE_URL` reaches PostgreSQL through a pooler in transaction mode
    /// (PgBouncer's `pool_mode = transaction`): every query then runs in a transaction of its
    /// own, without the statement cache or startup options, which such a pooler cannot carry
    /// across transactions. Migrations must then connect directly (`warden migrate` with the
    /// server's own URL, then `serve --no-migrate`). See docs/deploy.md.
    #[arg(long = "database-transaction-pooling", env = "DATABASE_TRANSACTION_POOLING",
          default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub transaction_pooling: bool,
}

/// Signing and lifetimes of tokens and sessions.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens")]
pub struct TokenConfig {
    /// The HS256 signing secret, at least 32 bytes. Required with PostgreSQL. With SQLite and no
    /// secret, one is generated and kept in `<database file>.jwt-secret`.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_secret: Option<SecretString>,

    /// How access tokens are signed: `HS256` or `EdDSA`.
    #[arg(long, env = "JWT_ALGORITHM", value_enum, default_value_t = JwtAlgorithm::Hs256)]
    pub jwt_algorithm: JwtAlgorithm,

    /// With EdDSA: the Ed25519 private key to sign with, a PKCS#8 PEM file
    /// (`openssl genpkey -algorithm ed25519 -out key.pem`).
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,

    /// With EdDSA: public keys (PEM files, comma-separated) of earlier signing keys whose
    /// tokens are still accepted, for rotating keys without logging everybody out.
    #[arg(long, env = "JWT_PREVIOUS_PUBLIC_KEY_FILES", value_delimiter = ',')]
    pub jwt_previous_public_key_files: Vec<PathBuf>,

    /// Access-token lifetime in minutes.
    #[arg(long, env = "ACCESS_TOKEN_EXPIRE_MINUTES", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=24 * 60))]
    pub access_token_expire_minutes: u64,

    /// Absolute session lifetime in days: a login is good for at most this long.
    #[arg(long, env = "SESSION_LIFETIME_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=365))]
    pub session_lifetime_days: u32,

    /// Refresh-token lifetime in days: a refresh token unused for this long stops working.
    #[arg(long, env = "REFRESH_TOKEN_EXPIRE_DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u32).range(1..=365))]
    pub refresh_token_expire_days: u32,

    /// The `iss` claim of issued tokens, and the only issuer accepted.
    #[arg(long, env = "JWT_ISSUER", default_value = "warden")]
    pub jwt_issuer: String,

    /// The `aud` claim of issued tokens, and the only audience accepted.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "warden")]
    pub jwt_audience: String,

    /// Clock skew tolerated when checking `exp` and `nbf`, in seconds (at most 5).
    #[arg(long, env = "JWT_LEEWAY_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=5))]
    pub jwt_leeway_seconds: u64,
}

/// Brute-force throttling and the client address.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Throttling")]
pub struct ThrottleSettings {
    /// Failed logins allowed per submitted username (whether or not it exists) before further
    /// attempts get 429, replenished over `LOGIN_FAILURE_WINDOW_SECONDS`. 0 turns it off.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_USERNAME", default_value_t = 5)]
    pub login_max_failures_per_username: u32,

    /// Failed logins allowed per client address, likewise. 0 turns it off.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = 20)]
    pub login_max_failures_per_address: u32,

    /// The window over which failed logins are counted, in seconds.
    #[arg(long, env = "LOGIN_FAILURE_WINDOW_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub login_failure_window_seconds: u64,

    /// Registrations allowed per client address over `REGISTRATION_WINDOW_SECONDS`. 0 turns it
    /// off.
    #[arg(long, env = "REGISTRATIONS_PER_ADDRESS", default_value_t = 10)]
    pub registrations_per_address: u32,

    /// The window over which registrations are counted, in seconds.
    #[arg(long, env = "REGISTRATION_WINDOW_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub registration_window_seconds: u64,

    /// How many reverse proxies in front of Warden append the client's address to
    /// `X-Forwarded-For`. 0 (the default) ignores the header: behind no proxy, any client
    /// could forge it.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
}

/// Password hashing.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Passwords")]
pub struct PasswordConfig {
    /// How many password hashes may run at once: that many hashing threads, each holding
    /// 19 MiB for good. Default: the number of CPUs, at most 3 (57 MiB).
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub password_hash_concurrency: Option<u16>,

    /// How many logins (or other password checks) may wait for a hashing thread. Past that,
    /// `/login` answers 503 `temporarily_unavailable` with `Retry-After` rather than queue more.
    #[arg(long, env = "PASSWORD_HASH_QUEUE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub password_hash_queue: u32,
}

/// The default number of hashing threads: one per CPU, but at most this many, so that their
/// memory (19 MiB each) stays bounded on large hosts.
const MAX_DEFAULT_HASH_CONCURRENCY: usize = 3;

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .min(MAX_DEFAULT_HASH_CONCURRENCY)
}

/// Parses a secret setting straight into a type that never prints.
fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

impl Config {
    pub fn throttle(&self) -> ThrottleConfig {
        let settings = &self.throttling;
        let failures = |max| Limit {
            max,
            window: Duration::from_secs(settings.login_failure_window_seconds),
        };
        ThrottleConfig {
            login_failures_per_username: failures(settings.login_max_failures_per_username),
            login_failures_per_address: failures(settings.login_max_failures_per_address),
            registrations_per_address: Limit {
                max: settings.registrations_per_address,
                window: Duration::from_secs(settings.registration_window_seconds),
            },
            mail_requests_per_address: Limit {
                max: self.mail.mail_requests_per_address,
                window: Duration::from_secs(self.mail.mail_request_window_seconds),
            },
            mail_requests_per_email: Limit {
                max: self.mail.mail_requests_per_email,
                window: Duration::from_secs(self.mail.mail_request_window_seconds),
            },
        }
    }

    pub fn access_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.tokens.access_token_expire_minutes * 60)
    }

    /// The database URL, exposed where a connection is made.
    pub fn database_url(&self) -> &str {
        self.database.url.expose_secret()
    }
}

impl PasswordConfig {
    /// How many passwords are hashed at once: `PASSWORD_HASH_CONCURRENCY`, else one per CPU,
    /// at most three.
    pub fn hash_concurrency(&self) -> usize {
        self.password_hash_concurrency
            .map_or_else(default_hash_concurrency, usize::from)
    }

    /// How many password checks may wait for a hashing thread before the next is refused.
    pub fn hash_queue(&self) -> usize {
        usize::try_from(self.password_hash_queue).unwrap_or(usize::MAX)
    }
}

/// Where the signing secret came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An EdDSA private key file.
    KeyFile(PathBuf),
    Configured,
    File {
        path: PathBuf,
        created: bool,
    },
    Ephemeral,
}

/// The keys to sign and verify tokens with, and where they came from (for the start-up log).
pub fn resolve_jwt_keys(config: &Config) -> anyhow::Result<(JwtKeys, SecretSource)> {
    let tokens = &config.tokens;
    match tokens.jwt_algorithm {
        JwtAlgorithm::Hs256 => {
            let (secret, source) = resolve_jwt_secret(config)?;
            Ok((JwtKeys::Hs256 { secret }, source))
        }
        JwtAlgorithm::EdDsa => {
            let path = tokens
                .jwt_private_key_file
                .as_ref()
                .context("JWT_ALGORITHM=EdDSA needs JWT_PRIVATE_KEY_FILE")?;
            let signing = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let previous = tokens
                .jwt_previous_public_key_files
                .iter()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))
                })
                .collect::<anyhow::Result<_>>()?;
            let keys = JwtKeys::EdDsa {
                signing: SecretString::from(signing),
                previous,
            };
            Ok((keys, SecretSource::KeyFile(path.clone())))
        }
    }
}

/// The signing secret: `JWT_SECRET` if set. Otherwise, with a SQLite file, the secret kept
/// beside it (made on first start, readable by the owner only), so that tokens survive a
/// restart; with an in-memory database, a fresh one. PostgreSQL deployments may run several
/// instances, which must share one secret, so there it has to be configured.
fn resolve_jwt_secret(config: &Config) -> anyhow::Result<(SecretSlice<u8>, SecretSource)> {
    if let Some(secret) = &config.tokens.jwt_secret {
        let bytes = secret.expose_secret().as_bytes().to_vec();
        return Ok((bytes.into(), SecretSource::Configured));
    }
    match Backend::of_url(config.database_url())? {
        Backend::Postgres => bail!(
            "JWT_SECRET is required with PostgreSQL (at least 32 bytes): every instance must sign \
             with the same secret"
        ),
        Backend::Sqlite => match sqlite_file(config.database_url())? {
            None => Ok((random_secret().into_bytes().into(), SecretSource::Ephemeral)),
            Some(database) => {
                let mut path = database.into_os_string();
                path.push(".jwt-secret");
                let path = PathBuf::from(path);
                let (secret, created) = read_or_create_secret(&path)?;
                Ok((
                    secret.into_bytes().into(),
                    SecretSource::File { path, created },
                ))
            }
        },
    }
}

fn read_or_create_secret(path: &Path) -> anyhow::Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(secret) => return Ok((secret.trim().to_owned(), false)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
    let secret = random_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((secret, true))
}

/// 256 random bits, hex-encoded.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

mod accounts;
mod build;
mod mail;
mod server;

pub use accounts::{AccountConfig, resolve_mfa_key};
pub use mail::MailConfig;
pub use server::ServerConfig;

#[cfg(test)]
mod tests;
