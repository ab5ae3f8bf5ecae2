//! `cargo xtask fuzz`: schemathesis against a running `warden`, with every check, for a fixed
//! seed and a bounded number of examples per operation. Schemathesis is installed, pinned, into
//! a virtual environment under `target/`, so nothing is installed system-wide.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{cargo, exec, root};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const SEED: &str = "20261121";
const MAX_EXAMPLES: &str = "25";
const ADMIN_EMAIL: &str = "fuzz-admin@example.com";
const PASSWORD: &str = "fuzzing password";

/// The virtual environment, made and filled on first use.
fn venv() -> anyhow::Result<PathBuf> {
    let venv = root().join("target/fuzz-venv");
    let st = venv.join("bin/st");
    if st.is_file() {
        return Ok(venv);
    }
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&venv);
    exec(make).context(
        "cannot make a Python virtual environment: install Python 3 with venv \
         (`apt-get install python3-venv`, which .ci/run does when it can)",
    )?;
    let mut install = Command::new(venv.join("bin/pip"));
    install.args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SCHEMATHESIS,
    ]);
    exec(install)?;
    Ok(venv)
}

/// A `warden` for the fuzzer: a fresh SQLite file, throttling off (the fuzzer registers and logs
/// in thousands of times from one address), tokens that outlive the run.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let url = format!("http://127.0.0.1:{port}");
        let child = configured(binary, dir)
            .env("WARDEN_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("warden.log"))?))
            .spawn()
            .context("cannot start warden")?;
        let server = Self { child, url };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "warden did not come up; see {}",
                    dir.join("warden.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }
}

impl Drop for Server {
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

pub(crate) fn run() -> anyhow::Result<()> {
    let venv = venv()?;
    let mut build = cargo();
    build.args(["build", "--quiet", "--locked", "--package", "warden"]);
    exec(build)?;
    let binary = root().join("target/debug/warden");
    let dir = root().join("target/fuzz-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let mut admin = configured(&binary, &dir);
    admin
        .args(["create-admin", "--email", ADMIN_EMAIL])
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

    let server = Server::start(&binary, &dir)?;
    let mut st = Command::new(venv.join("bin/st"));
    st.current_dir(&dir)
        .arg("--config-file")
        .arg(root().join("xtask/fuzz/schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", server.url)])
        // No `--checks`: every check is on by default, and the flag would override the
        // per-operation exceptions of the configuration file.
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args([
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .env("SCHEMATHESIS_HOOKS", "warden_hooks")
        .env("PYTHONPATH", root().join("xtask/fuzz"))
        .env("WARDEN_FUZZ_URL", &server.url)
        .env("WARDEN_FUZZ_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("WARDEN_FUZZ_PASSWORD", PASSWORD);
    exec(st).context(
        "schemathesis found problems (above); the server log is target/fuzz-run/warden.log",
    )?;
    Ok(())
}
