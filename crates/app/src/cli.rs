//! Commands other than serving: `warden migrate`, `warden check-config`, `warden create-admin`.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, bail};
use warden_adapters::{Argon2Hasher, Backend, Store, StoreOptions, sqlite_file};
use warden_domain::accounts::{
    AdminPorts, AdminService, EmailAddress, Password, RegisterError, UserPorts, UserService,
};

use crate::config::{Config, JwtAlgorithm};
use crate::cors::CorsOrigins;

fn command_store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        max_connections: 2,
        transaction_pooling: config.database.transaction_pooling,
        ..StoreOptions::default()
    }
}

/// `warden migrate`: applies the migrations the database has not seen, and says which.
///
/// # Errors
///
/// The database cannot be reached, or a migration fails (then it is rolled back).
pub async fn migrate(config: &Config) -> anyhow::Result<String> {
    let store = Store::open(config.database_url(), &command_store_options(config)).await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    store.close().await;
    Ok(if pending.is_empty() {
        "the database's schema is up to date".to_owned()
    } else {
        format!("applied {}", pending.join(", "))
    })
}

/// `warden check-config`: everything `serve` would refuse to start over, checked without
/// changing anything (no migration, no secret file, no database file). Returns what it found.
///
/// # Errors
///
/// The first problem, with what to do about it.
pub async fn check_config(config: &Config) -> anyhow::Result<String> {
    let mut report = Vec::new();
    let url = config.database_url();
    let backend = Backend::of_url(url)?;
    CorsOrigins::new(&config.server.cors_allowed_origins)?;
    // A mail server that cannot be reached now is reported, not refused: `serve` starts, and
    // mail waits in the outbox until the server answers.
    report.push(match config.mailer()? {
        Some(mailer) => match mailer.check_connection().await {
            Ok(()) => "email: on; the mail server (SMTP_URL) answered".to_owned(),
            Err(err) => format!(
                "email: on, but the mail server (SMTP_URL) cannot be reached now ({err:#}); mail \
                 waits in the outbox until it can"
            ),
        },
        None => "email: off (no SMTP_URL)".to_owned(),
    });

    // The signing keys, unless `serve` would generate the secret (SQLite without one yet).
    let secret_file = match backend {
        Backend::Sqlite => sqlite_file(url)?.map(|database| {
            let mut path = database.into_os_string();
            path.push(".jwt-secret");
            std::path::PathBuf::from(path)
        }),
        Backend::Postgres => None,
    };
    let generated = config.tokens.jwt_algorithm == JwtAlgorithm::Hs256
        && config.tokens.jwt_secret.is_none()
        && backend == Backend::Sqlite
        && secret_file.as_ref().is_none_or(|file| !file.exists());
    if generated {
        report.push("signing: a secret will be generated on first start".to_owned());
    } else {
        config.access_tokens()?;
        report.push(format!(
            "signing: {:?} keys are valid",
            config.tokens.jwt_algorithm
        ));
    }

    let database_file = match backend {
        Backend::Sqlite => sqlite_file(url)?,
        Backend::Postgres => None,
    };
    if database_file.as_ref().is_some_and(|file| !file.exists()) {
        report.push("database: the SQLite file will be created on first start".to_owned());
    } else {
        let store = Store::open(url, &command_store_options(config)).await?;
        store.ping().await.context("the database does not answer")?;
        let pending = store.pending_migrations().await?;
        store.close().await;
        report.push(match pending.as_slice() {
            [] => format!("database: {backend:?} answers; its schema is up to date"),
            pending => format!(
                "database: {backend:?} answers; {} migration(s) to apply (`warden migrate`, or \
                 `warden serve` applies them): {}",
                pending.len(),
                pending.join(", ")
            ),
        });
    }
    report.push("configuration ok".to_owned());
    Ok(report.join("\n"))
}

/// What `create-admin` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    Created { id: i64 },
    Promoted { id: i64 },
    AlreadyAdmin { id: i64 },
}

impl std::fmt::Display for AdminOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Created { id } => write!(f, "created admin account {id}"),
            Self::Promoted { id } => write!(f, "made account {id} an active admin"),
            Self::AlreadyAdmin { id } => write!(f, "account {id} is already an active admin"),
        }
    }
}

/// Makes `email` an admin: promotes the account if it exists, else creates it with the password
/// `read_password` supplies (asked for only then).
pub async fn create_admin(
    config: &Config,
    email: &str,
    read_password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<AdminOutcome> {
    let email = EmailAddress::new(email).map_err(|err| anyhow::anyhow!("{}", err.reason))?;
    let store =
        Arc::new(Store::connect(config.database_url(), &command_store_options(config)).await?);
    let hasher = Arc::new(Argon2Hasher::new(1, 1)?);
    let users = UserService::new(UserPorts {
        users: store.clone(),
        sessions: store.clone(),
        hasher,
    });
    let admin = AdminService::new(AdminPorts {
        users: store.clone(),
        sessions: store.clone(),
    });

    let outcome = match users.find_by_email(&email).await? {
        Some(user) if user.is_admin && user.is_active => {
            AdminOutcome::AlreadyAdmin { id: user.id.get() }
        }
        Some(user) => {
            admin.promote(user.id).await?;
            AdminOutcome::Promoted { id: user.id.get() }
        }
        None => {
            let password =
                Password::new(read_password()?).map_err(|err| anyhow::anyhow!("{err}"))?;
            match users.create_admin(email, password).await {
                Ok(user) => AdminOutcome::Created { id: user.id.get() },
                Err(RegisterError::Duplicate { .. }) => {
                    bail!("an account with this email was created meanwhile; run the command again")
                }
                Err(RegisterError::Unknown(err)) => return Err(err),
            }
        }
    };
    store.close().await;
    Ok(outcome)
}

/// The new admin's password: asked for twice, without echo, on a terminal; otherwise the first
/// line of standard input (for scripts: `printf '%s\n' "$PASSWORD" | warden create-admin ...`).
pub fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("Password for the new admin: ")?;
        let again = rpassword::prompt_password("Once more: ")?;
        if password != again {
            bail!("the passwords differ");
        }
        Ok(password)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
    }
}
