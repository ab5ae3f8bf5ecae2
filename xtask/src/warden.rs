//! One way to start `warden`, for every check and the bench: which build, in which directory,
//! with which environment, logging where, and when it counts as up; stopped on drop, or by
//! SIGTERM and a wait.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::{cargo, exec, net, root};

/// How long a started `warden` has to come up, and a signalled one to stop.
const WITHIN: Duration = Duration::from_secs(30);

/// Which build of `warden`.
#[derive(Clone, Copy)]
pub(crate) enum Profile {
    /// `target/debug/warden`, for the checks.
    Debug,
    /// `target/release/warden`, for the bench.
    Release,
}

impl Profile {
    /// The binary, as [`Profile::build`] leaves it.
    pub(crate) fn binary(self) -> PathBuf {
        match self {
            Self::Debug => root().join("target/debug/warden"),
            Self::Release => root().join("target/release/warden"),
        }
    }

    /// Builds `warden` (quietly, for the checks; the bench's release build shows its progress)
    /// and returns the binary.
    pub(crate) fn build(self) -> anyhow::Result<PathBuf> {
        let mut build = cargo();
        match self {
            Self::Debug => build.args(["build", "--quiet", "--locked", "--package", "warden"]),
            Self::Release => build.args(["build", "--release", "--locked", "--package", "warden"]),
        };
        exec(build)?;
        Ok(self.binary())
    }
}

/// When a started `warden` counts as up.
#[derive(Clone, Copy)]
pub(crate) enum Probe {
    /// It accepts connections on its port.
    Listening,
    /// `GET /health/ready` answers 200.
    Ready,
}

/// `warden` about to run: its binary, in a directory, with nothing of our environment but what
/// is added.
pub(crate) struct Launch {
    command: Command,
}

impl Launch {
    /// `binary` run in `dir`, with an empty environment.
    pub(crate) fn new(binary: &Path, dir: &Path) -> Self {
        let mut command = Command::new(binary);
        command.current_dir(dir).env_clear();
        Self { command }
    }

    /// Our `PATH` passed on.
    pub(crate) fn with_path(self) -> Self {
        self.env("PATH", std::env::var_os("PATH").unwrap_or_default())
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// `env` added, each overriding what was set before.
    pub(crate) fn envs(mut self, env: &[(&str, &str)]) -> Self {
        self.command.envs(env.iter().copied());
        self
    }

    /// Throttling off: no failed-login budget per username or address, and no registration
    /// limit per address (the checks and the bench do all they do from one address).
    pub(crate) fn unthrottled(self) -> Self {
        self.env("LOGIN_MAX_FAILURES_PER_USERNAME", "0")
            .env("LOGIN_MAX_FAILURES_PER_ADDRESS", "0")
            .env("REGISTRATIONS_PER_ADDRESS", "0")
    }

    pub(crate) fn args(mut self, args: &[&str]) -> Self {
        self.command.args(args);
        self
    }

    /// The command, for a one-shot subcommand (`create-admin`, `check-config`).
    pub(crate) fn command(self) -> Command {
        self.command
    }

    /// `warden migrate` on `database_url`, directly: a database that `warden serve` will reach
    /// through a transaction pooler, where migrations cannot run, is migrated this way first.
    pub(crate) fn migrate(self, database_url: &str) -> anyhow::Result<()> {
        let mut migrate = self
            .env("DATABASE_URL", database_url)
            .args(&["migrate"])
            .command();
        migrate.stdout(Stdio::null());
        exec(migrate)
    }

    /// Starts it serving on 127.0.0.1:`port` (`WARDEN_ADDR`), its stderr to `log`, and waits
    /// up to 30 s for `probe`; fails, pointing at the log, if it exits or does not come up.
    pub(crate) fn serve(self, port: u16, log: &Path, probe: Probe) -> anyhow::Result<Warden> {
        let Self { mut command } = self;
        let child = command
            .env("WARDEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log)?))
            .spawn()
            .context("cannot start warden")?;
        let mut warden = Warden {
            child,
            port,
            log: log.to_owned(),
        };
        warden.wait_until(probe)?;
        Ok(warden)
    }
}

/// A running `warden`, killed on drop.
pub(crate) struct Warden {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Warden {
    /// `127.0.0.1:<port>`.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_until(&mut self, probe: Probe) -> anyhow::Result<()> {
        let deadline = Instant::now() + WITHIN;
        loop {
            let up = match probe {
                Probe::Listening => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
                Probe::Ready => {
                    net::http(&self.addr(), "GET", "/health/ready", &[], "")
                        .unwrap_or_default()
                        .0
                        == 200
                }
            };
            if up {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("warden exited ({status}); see {}", self.log.display());
            }
            ensure!(
                Instant::now() < deadline,
                "warden did not come up; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits up to 30 s for it to exit: how it exited.
    pub(crate) fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut term = Command::new("kill");
        term.args(["-TERM", &self.child.id().to_string()]);
        exec(term)?;
        let deadline = Instant::now() + WITHIN;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            ensure!(
                Instant::now() < deadline,
                "warden did not stop; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
