//! The bench's database: a fresh SQLite file, PostgreSQL database, or PostgreSQL database behind
//! PgBouncer, and the SQL shell that seeds it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};

use super::Backend;
use crate::postgres::{self, psql};
use crate::warden::{Launch, Profile};

/// A fresh database and the SQL shell to reach it.
pub(super) struct Database {
    /// Where psql and sqlite3 reach it.
    pub(super) url: String,
    /// Where Warden reaches it, and whether that is through a transaction pooler.
    pub(super) serve_url: String,
    pub(super) pooler: Option<crate::pgbouncer::PgBouncer>,
    pub(super) backend: &'static str,
    pub(super) admin_url: Option<String>,
    pub(super) name: String,
}

impl Database {
    pub(super) fn fresh(backend: &Backend, dir: &Path) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}", dir.join("warden.db").display()),
                serve_url: format!("sqlite://{}", dir.join("warden.db").display()),
                pooler: None,
                backend: "sqlite",
                admin_url: None,
                name: dir.join("warden.db").display().to_string(),
            }),
            Backend::Postgres(admin) => {
                let name = "warden_bench".to_owned();
                let url = postgres::fresh_database(admin, &name)?;
                Ok(Self {
                    serve_url: url.clone(),
                    url,
                    pooler: None,
                    backend: "postgres",
                    admin_url: Some(admin.clone()),
                    name,
                })
            }
            Backend::PgBouncer(admin) => {
                let name = "warden_bench".to_owned();
                let url = postgres::fresh_database(admin, &name)?;
                // Migrated directly, as through the pooler it cannot be.
                Launch::new(&Profile::Release.binary(), dir).migrate(&url)?;
                // As many server connections as Warden's pool would open by itself.
                // Server connections stay open, so that their CPU time is counted.
                let pooler = crate::pgbouncer::PgBouncer::start("bench", admin, 10, 3600)?;
                Ok(Self {
                    serve_url: pooler.database_url(&name),
                    url,
                    pooler: Some(pooler),
                    backend: "pgbouncer",
                    admin_url: Some(admin.clone()),
                    name,
                })
            }
        }
    }

    /// Runs `sql` (several statements) in one transaction.
    pub(super) fn execute(&self, sql: &str) -> anyhow::Result<String> {
        match &self.admin_url {
            None => {
                let mut sqlite = Command::new("sqlite3");
                sqlite
                    .args(["-bail", &self.name])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped());
                let mut child = sqlite
                    .spawn()
                    .context("sqlite3 is not installed (`apt-get install sqlite3`)")?;
                child
                    .stdin
                    .take()
                    .context("no stdin")?
                    .write_all(format!("BEGIN;\n{sql}\nCOMMIT;\n").as_bytes())?;
                let output = child.wait_with_output()?;
                ensure!(output.status.success(), "sqlite3 failed on:\n{sql}");
                Ok(String::from_utf8(output.stdout)?)
            }
            Some(_) => psql(&self.url, &format!("BEGIN;\n{sql}\nCOMMIT;")),
        }
    }

    pub(super) fn drop_database(&self) {
        if let Some(admin) = &self.admin_url {
            postgres::drop_database(admin, &self.name);
        }
    }
}
