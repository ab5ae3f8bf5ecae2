//! A throwaway PgBouncer (Debian's, 1.18) in transaction-pooling mode in front of the tests'
//! PostgreSQL, for running the PostgreSQL tests through it (`WARDEN_TEST_POOLER_URL`) and for
//! the cluster check. Started in the foreground as a child process, stopped on drop. PgBouncer
//! refuses to run as root; as root it runs as the `postgres` system user.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::net;
use crate::postgres::is_root;

pub(crate) struct PgBouncer {
    child: Child,
    dir: PathBuf,
    /// `postgres://USER[:PASSWORD]@127.0.0.1:PORT`, without a database.
    pub(crate) url: String,
}

/// The parts of a `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` URL PgBouncer needs.
struct Server {
    user: String,
    password: String,
    host: String,
    port: u16,
}

fn parse(url: &str) -> anyhow::Result<Server> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .context("not a URL")?;
    let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, host_port) = authority
        .rsplit_once('@')
        .context("the URL names no user")?;
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().context("bad port")?),
        None => (host_port, 5432),
    };
    Ok(Server {
        user: user.to_owned(),
        password: password.to_owned(),
        host: host.to_owned(),
        port,
    })
}

fn binary() -> anyhow::Result<PathBuf> {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .context("PgBouncer is not installed: `apt-get install pgbouncer` (.ci/run does)")
}

impl PgBouncer {
    /// Starts PgBouncer in front of the server `admin_url` names, pooling every database on it
    /// in transaction mode with at most `pool_size` server connections per database, each
    /// closed after `idle` seconds unused.
    pub(crate) fn start(
        name: &str,
        admin_url: &str,
        pool_size: u32,
        idle: u32,
    ) -> anyhow::Result<Self> {
        let binary = binary()?;
        let server = parse(admin_url)?;
        let dir = std::env::temp_dir().join(format!(
            "warden-xtask-pgbouncer-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let port = net::free_port()?;
        let quote = |value: &str| value.replace('"', "\"\"");
        std::fs::write(
            dir.join("users.txt"),
            format!(
                "\"{}\" \"{}\"\n",
                quote(&server.user),
                quote(&server.password)
            ),
        )?;
        // `*` pools every database name on the server (the tests make one per test, and give
        // a short `idle`, so that their many short-lived databases do not pile connections up
        // on the server). sqlx sends extra_float_digits unless told not to; it is
        // ignored rather than refused, so that psql and other clients get through too.
        let config = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {pool_size}\n\
             max_client_conn = 2000\n\
             server_idle_timeout = {idle}\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n",
            host = server.host,
            server_port = server.port,
            dir = dir.display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), config)?;
        let mut command = if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:"]).arg(&dir);
            crate::exec(chown).context("PgBouncer runs as the postgres system user")?;
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start PgBouncer")?;
        let credentials = if server.password.is_empty() {
            server.user.clone()
        } else {
            format!("{}:{}", server.user, server.password)
        };
        let bouncer = Self {
            child,
            url: format!("postgres://{credentials}@127.0.0.1:{port}"),
            dir,
        };
        if !net::listening_within(port, Duration::from_secs(10)) {
            bail!(
                "PgBouncer did not come up; see {}",
                bouncer.dir.join("pgbouncer.log").display()
            );
        }
        Ok(bouncer)
    }

    /// The pgbouncer process (under `runuser` when we are root), for its CPU time.
    pub(crate) fn pid(&self) -> u32 {
        let child = self.child.id();
        let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        if comm.trim() == "pgbouncer" {
            return child;
        }
        std::fs::read_to_string(format!("/proc/{child}/task/{child}/children"))
            .ok()
            .and_then(|children| children.split_whitespace().next()?.parse().ok())
            .unwrap_or(child)
    }

    /// The URL of database `name` through PgBouncer.
    pub(crate) fn database_url(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser passes SIGKILL's effect on: its child is in the same process group.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn urls_are_taken_apart() {
        let server = parse("postgres://ann:s3cret@db.example:6000/warden").unwrap();
        assert_eq!(
            (
                server.user.as_str(),
                server.password.as_str(),
                server.host.as_str(),
                server.port
            ),
            ("ann", "s3cret", "db.example", 6000)
        );
        let server = parse("postgres://postgres@127.0.0.1/postgres").unwrap();
        assert_eq!((server.password.as_str(), server.port), ("", 5432));
    }
}
