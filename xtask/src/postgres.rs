//! Finds a PostgreSQL server for the tests, or starts a throwaway one.
//!
//! In order: `DATABASE_URL` if it names PostgreSQL; a server on 127.0.0.1:5432 that lets user
//! `postgres` in; a fresh server started from the local PostgreSQL binaries in a temporary
//! directory (stopped and removed when the tests are done). If none of these works, this fails
//! and says what to do: PostgreSQL tests never skip.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{exec, net};

const LOCAL_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub(crate) enum Postgres {
    /// A server somebody else runs.
    External { url: String, source: &'static str },
    /// A server we started, stopped on drop.
    Throwaway(Throwaway),
}

impl Postgres {
    pub(crate) fn url(&self) -> &str {
        match self {
            Self::External { url, .. } => url,
            Self::Throwaway(throwaway) => &throwaway.url,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::External { url, source } => format!("{} ({source})", redact(url)),
            Self::Throwaway(throwaway) => format!(
                "{} (throwaway server in {})",
                throwaway.url,
                throwaway.dir.display()
            ),
        }
    }
}

/// Makes an empty database `name` on the server at `admin_url` (dropping one left by an earlier
/// run) and returns its URL.
pub(crate) fn fresh_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    drop_database(admin_url, name);
    psql(admin_url, &format!("CREATE DATABASE {name}"))?;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// Drops database `name`, if it exists, whoever is connected to it.
pub(crate) fn drop_database(admin_url: &str, name: &str) {
    let _ = psql(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

/// Runs one SQL command with psql and returns what it printed.
pub(crate) fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql])
        .output()
        .context("psql is not installed")?;
    if !output.status.success() {
        bail!(
            "psql failed: {}\n{sql}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// A URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn find_or_start(force_throwaway: bool) -> anyhow::Result<Postgres> {
    if !force_throwaway {
        if let Ok(url) = std::env::var("DATABASE_URL")
            && (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Ok(Postgres::External {
                url,
                source: "from DATABASE_URL",
            });
        }
        if accepts_connections(LOCAL_URL) {
            return Ok(Postgres::External {
                url: LOCAL_URL.to_owned(),
                source: "the local server",
            });
        }
    }
    match server_binaries() {
        Some(bin) => Ok(Postgres::Throwaway(Throwaway::start(&bin, "")?)),
        None => bail!(
            "no PostgreSQL for the tests: DATABASE_URL is not a postgres:// URL, nothing accepts \
             user postgres on 127.0.0.1:5432, and no PostgreSQL server binaries (initdb, pg_ctl) \
             are installed to start a throwaway one. Do one of: export \
             DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DB (a role that may create \
             databases); start a local server with trust auth for user postgres; or install the \
             server (`apt-get install postgresql`, which .ci/run does when it can)"
        ),
    }
}

/// Whether a server at `url` lets us in: psql if it is installed (it checks authentication
/// too), else a bare TCP connection.
fn accepts_connections(url: &str) -> bool {
    let psql = Command::new("psql")
        .args([url, "-Atqc", "SELECT 1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match psql {
        Ok(status) => status.success(),
        Err(_) => TcpStream::connect_timeout(
            &"127.0.0.1:5432".parse().expect("a valid address"),
            Duration::from_secs(2),
        )
        .is_ok(),
    }
}

/// The directory holding `initdb` and `pg_ctl`: on the PATH, or Debian's versioned directory
/// (the newest version).
fn server_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    debian.sort_by_key(|dir| {
        dir.parent()
            .and_then(|version| version.file_name())
            .and_then(|version| version.to_str())
            .and_then(|version| version.parse::<u32>().ok())
            .unwrap_or(0)
    });
    on_path
        .chain(debian.into_iter().rev())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

pub(crate) struct Throwaway {
    url: String,
    dir: PathBuf,
    pg_ctl: PathBuf,
    /// The unprivileged user the server runs as when we are root (PostgreSQL refuses root).
    run_as: Option<&'static str>,
}

/// A throwaway server with `options` added to its command line (`-c ssl=on ...`), for checks
/// that need a server configured their own way. `name` keeps several apart.
pub(crate) fn start_throwaway(name: &str, options: &str) -> anyhow::Result<Throwaway> {
    let bin = server_binaries()
        .context("no PostgreSQL server binaries (initdb, pg_ctl): `apt-get install postgresql`")?;
    Throwaway::start_named(&bin, name, options)
}

impl Throwaway {
    pub(crate) fn port(&self) -> u16 {
        self.url
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
            .unwrap_or(0)
    }

    fn start(bin: &Path, options: &str) -> anyhow::Result<Self> {
        Self::start_named(bin, "tests", options)
    }

    fn start_named(bin: &Path, name: &str, extra_options: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "warden-xtask-postgres-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let mut chown = Command::new("chown");
            chown.args([
                &format!("{user}:"),
                dir.to_str().context("non-UTF-8 temp dir")?,
            ]);
            exec(chown).context(
                "running as root, the throwaway server needs the `postgres` system user, which \
                 the postgresql package creates",
            )?;
        }
        let port = net::free_port()?;
        let data = dir.join("data");
        let throwaway = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir: dir.clone(),
            pg_ctl: bin.join("pg_ctl"),
            run_as,
        };
        let mut initdb = throwaway.command(&bin.join("initdb"));
        initdb
            .args([
                "--pgdata",
                path(&data)?,
                "--username",
                "postgres",
                "--auth",
                "trust",
            ])
            .args(["--encoding", "UTF8", "--no-sync"])
            .stdout(Stdio::null());
        exec(initdb)?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200 \
             {extra_options}",
            path(&dir)?
        );
        let mut start = throwaway.command(&throwaway.pg_ctl);
        start
            .args(["start", "--wait", "--pgdata", path(&data)?, "--log"])
            .arg(dir.join("server.log"))
            .args(["-o", &options])
            .stdout(Stdio::null());
        exec(start)?;
        Ok(throwaway)
    }

    fn command(&self, program: &Path) -> Command {
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let mut stop = self.command(&self.pg_ctl);
        stop.args(["stop", "--mode", "fast", "--pgdata"])
            .arg(self.dir.join("data"))
            .stdout(Stdio::null());
        if let Err(err) = exec(stop) {
            eprintln!("warning: could not stop the throwaway PostgreSQL: {err:#}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .context("the temporary directory's path is not UTF-8")
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://ann:s3cret@db:5432/w"),
            "postgres://ann:***@db:5432/w"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/w"),
            "postgres://postgres@127.0.0.1/w"
        );
    }
}
