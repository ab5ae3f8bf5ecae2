//! Project automation, run as `cargo xtask <command>` (rust-analyzer's convention: plain Rust
//! instead of shell scripts, so it works wherever cargo does).
//!
//! - `ci`: everything CI checks: formatting, clippy, every test on SQLite and PostgreSQL, that
//!   the committed OpenAPI document matches the code, the schemathesis run, the Swagger UI
//!   check and a quick run of the benchmark harness.
//! - `fuzz`: schemathesis against a running `warden` (part of `ci`).
//! - `e2e`: Swagger UI's Authorize button in headless Chromium (part of `ci`).
//! - `cluster`: two instances behind HAProxy, through PgBouncer (part of `ci`).
//! - `openapi [--check]`: writes `docs/openapi.json` from the code, or checks it is current.
//! - `bench [--quick] [--backend B] [--baseline FILE]`: the release build under load (`bench.rs`).

mod bench;
mod ci;
mod cluster;
mod container;
mod e2e;
mod fuzz;
mod net;
mod openapi;
mod pgbouncer;
mod postgres;
mod python;
mod served;
mod smtp;
#[cfg(test)]
mod tidy;
mod tls;
mod warden;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci [--throwaway-postgres]   format check, clippy, all tests (SQLite and PostgreSQL, and the
                              PostgreSQL half again through PgBouncer), the cluster check,
                              OpenAPI check, TLS, container, fuzz, e2e and a quick bench
                              PostgreSQL: DATABASE_URL if it is postgres://, else a server on
                              127.0.0.1:5432 (user postgres), else a throwaway server started
                              from the local PostgreSQL binaries; --throwaway-postgres forces the last
  fuzz                        schemathesis against a running warden, every check, fixed seed
  e2e                         Swagger UI's Authorize button, in headless Chromium
  openapi [--check]           write docs/openapi.json from the code, or check that it is current
  container                   hadolint on the Dockerfile and a check of compose.yaml (no engine
                              can pull base images here; part of ci)
  tls                         warden over TLS to throwaway PostgreSQL servers and to aiosmtpd
                              mail servers: verify-full, smtps:// and STARTTLS with the right
                              root work; a wrong host name or root, or TLS required of a server
                              without it, refuse (part of ci)
  cluster                     two instances on one PostgreSQL, through PgBouncer (transaction
                              pooling), behind HAProxy: tokens, logout, refresh and registration
                              races and the failed-login budget across instances, and a rolling
                              restart under load with no failed request (part of ci)
  bench [--quick] [--backend sqlite|postgres|pgbouncer] [--baseline FILE]
                              the release build under load (wrk) on SQLite, PostgreSQL, and
                              PostgreSQL through PgBouncer (transaction pooling):
                              req/s, latency, server and database CPU per request, peak RSS;
                              writes target/bench/results.{md,json}; --quick checks the harness
                              in seconds (part of ci); --baseline prints ratios to an earlier run";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ci"] => ci::run(false),
        ["ci", "--throwaway-postgres"] => ci::run(true),
        ["fuzz"] => fuzz::run(),
        ["e2e"] => e2e::run(),
        ["bench", options @ ..] => bench::run(options),
        ["tls"] => tls::run(),
        ["container"] => container::run(),
        ["cluster"] => cluster::run(),
        ["openapi"] => openapi::write(),
        ["openapi", "--check"] => openapi::check(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo that runs us, so that the same toolchain does everything.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs `command`, echoing it, and fails unless it succeeds.
fn exec(mut command: Command) -> anyhow::Result<()> {
    eprintln!("\n==> {}", describe(&command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", describe(&command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(&command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program()).file_name().map_or_else(
        || command.get_program().to_string_lossy(),
        |name| name.to_string_lossy(),
    );
    std::iter::once(program.into_owned())
        .chain(
            command
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ")
}
