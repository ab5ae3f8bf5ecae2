//! A `warden` to test from the outside: built, given a fresh SQLite file in a directory of its
//! own under `target/`, started on a free port, and stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};

use crate::warden::{Launch, Probe, Profile, Warden};
use crate::{net, root};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A running `warden`. Throttling is off (the tools register and log in many times from one
/// address) and tokens outlive any run.
pub(crate) struct Served {
    _warden: Warden,
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
        let binary = Profile::Debug.build()?;
        let dir = root().join("target").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;

        let mut launch = configured(&binary, &dir).envs(env);
        if let Some(url) = database_url {
            launch = launch.env("DATABASE_URL", url).env(
                "JWT_SECRET",
                "a-fuzzing-signing-secret-of-more-than-32-bytes",
            );
        }
        let warden = launch.serve(net::free_port()?, &dir.join("warden.log"), Probe::Listening)?;
        Ok(Self {
            url: warden.url(),
            _warden: warden,
            binary,
            dir,
            database_url: database_url.map(str::to_owned),
        })
    }

    /// Makes `email` an admin with [`PASSWORD`], through `warden create-admin`.
    pub(crate) fn create_admin(&self, email: &str) -> anyhow::Result<()> {
        let mut launch = configured(&self.binary, &self.dir);
        if let Some(url) = &self.database_url {
            launch = launch.env("DATABASE_URL", url);
        }
        let mut admin = launch.args(&["create-admin", "--email", email]).command();
        admin.stdin(Stdio::piped()).stdout(Stdio::null());
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

fn configured(binary: &Path, dir: &Path) -> Launch {
    Launch::new(binary, dir)
        .with_path()
        .env("ACCESS_TOKEN_EXPIRE_MINUTES", "240")
        .unthrottled()
        .env("RUST_LOG", "warn")
}
