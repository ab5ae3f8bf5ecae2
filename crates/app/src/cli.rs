//! Commands other than serving: `warden create-admin`.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, bail};
use warden_adapters::{Argon2Hasher, Store, StoreOptions};
use warden_domain::services::{AdminService, RegisterError, UserService};
use warden_domain::{EmailAddress, Password};

use crate::config::Config;

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
    let options = StoreOptions {
        max_connections: 2,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::connect(config.database_url(), &options).await?);
    let hasher = Arc::new(Argon2Hasher::new(1, 1)?);
    let users = UserService::new(store.clone(), store.clone(), hasher);
    let admin = AdminService::new(store.clone(), store.clone());

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
