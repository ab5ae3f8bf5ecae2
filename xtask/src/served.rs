//! A `warden` to test from the outside: built, given a fresh SQLite file in a directory of its
//! own under `target/`, started on a free port, and stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{cargo, exec, net, root};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A running `warden`. Throttling is off (the tools register and log in many times from one
/// address) and tokens outlive any run.
pub(crate) struct Served {
    child: Child,
    binary: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) url: String,
    database_url: Option<String>,
}

impl Served {
    /// Builds `warden` and starts it in `target/<name>`, emptied first, on a fresh SQLite file
    /// there, or on `database_url` (a fresh PostgreSQL database) when given.
    pub(crate) fn start(name: &str, database_url: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(name, database_url, &[])
    }

    /// As [`Served::start`], with `env` added to its environment.
    pub(crate) fn start_with(
        name: &str,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut build = cargo();
        build.args(["build", "--quiet", "--locked", "--package", "warden"]);
        exec(build)?;
        let binary = root().join("target/debug/warden");
        let dir = root().join("target").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;

        let port = net::free_port()?;
        let mut command = configured(&binary, &dir);
        command.envs(env.iter().copied());
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url).env(
                "JWT_SECRET",
                "a-fuzzing-signing-secret-of-more-than-32-bytes",
            );
        }
        let child = command
            .env("WARDEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("warden.log"))?))
            .spawn()
            .context("cannot start warden")?;
        let served = Self {
            child,
            binary,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            database_url: database_url.map(str::to_owned),
        };
        if !net::listening_within(port, Duration::from_secs(30)) {
            bail!(
                "warden did not come up; see {}",
                served.dir.join("warden.log").display()
            );
        }
        Ok(served)
    }

    /// Makes `email` an admin with [`PASSWORD`], through `warden create-admin`.
    pub(crate) fn create_admin(&self, email: &str) -> anyhow::Result<()> {
        let mut admin = configured(&self.binary, &self.dir);
        if let Some(url) = &self.database_url {
            admin.env("DATABASE_URL", url);
        }
        admin
            .args(["create-admin", "--email", email])
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut child = admin.spawn().context("cannot run warden create-admin")?;
        std::io::Write::write_all(
            child.stdin.as_mut().context("no stdin")?,
            format!("{PASSWORD}\n").as_bytes(),
        )?;
        if !child.wait()?.success() {
            bail!("warden create-admin failed");
        }
        Ok(())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn configured(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ACCESS_TOKEN_EXPIRE_MINUTES", "240")
        .env("LOGIN_MAX_FAILURES_PER_USERNAME", "0")
        .env("LOGIN_MAX_FAILURES_PER_ADDRESS", "0")
        .env("REGISTRATIONS_PER_ADDRESS", "0")
        .env("RUST_LOG", "warn");
    command
}
