//! `cargo xtask fuzz`: schemathesis against a running `warden`, once on SQLite and once on
//! PostgreSQL, with every check, for a fixed seed and a bounded number of examples per
//! operation. Strings include NUL and every other character (schemathesis's `allow-x00` and
//! `codec` settings), so that what one database stores and the other refuses shows up as a
//! 500. Operations come from the document: a new one is fuzzed without being listed anywhere.
//! The hooks in `xtask/fuzz/` log the fuzzer in through `/login`;
//! `xtask/fuzz/schemathesis.toml` holds its configuration.

use std::process::Command;

use anyhow::Context;

use crate::served::{PASSWORD, Served};
use crate::smtp::{Listener, MailServer};
use crate::{exec, postgres, python, root};

const SEED: &str = "20261121";
const MAX_EXAMPLES: &str = "25";
const ADMIN_EMAIL: &str = "fuzz-admin@example.com";

pub(crate) fn run() -> anyhow::Result<()> {
    let venv = python::venv()?;
    eprintln!("\n==> fuzzing warden on SQLite");
    fuzz(&venv, "fuzz-run", None)?;
    let postgres = postgres::find_or_start(false)?;
    let database = postgres::fresh_database(postgres.url(), "warden_fuzz")?;
    eprintln!("\n==> fuzzing warden on PostgreSQL");
    let result = fuzz(&venv, "fuzz-run-postgres", Some(&database));
    postgres::drop_database(postgres.url(), "warden_fuzz");
    result
}

/// One schemathesis run against a fresh `warden` (in `target/<name>`).
fn fuzz(venv: &std::path::Path, name: &str, database_url: Option<&str>) -> anyhow::Result<()> {
    // Email on, through a real SMTP server (its mail kept in target/<name>-mail), so that the
    // email operations do their work rather than answer 501. Mail requests unthrottled: the
    // fuzzer asks for many.
    let mail_dir = root().join("target").join(format!("{name}-mail"));
    let _ = std::fs::remove_dir_all(&mail_dir);
    std::fs::create_dir_all(&mail_dir)?;
    let smtp = MailServer::start(&venv.join("bin/python"), &mail_dir, Listener::Plain)?;
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    // No earlier run's accounts: a fresh database for every run.
    let server = Served::start_with(
        name,
        database_url,
        &[
            ("SMTP_URL", &smtp_url),
            ("MAIL_FROM", "warden@example.com"),
            ("MAIL_REQUESTS_PER_ADDRESS", "0"),
            ("MAIL_REQUESTS_PER_EMAIL", "0"),
        ],
    );
    let result = server.and_then(|server| fuzz_served(venv, &server, name));
    drop(smtp);
    result
}

/// Schemathesis against `server`.
fn fuzz_served(venv: &std::path::Path, server: &Served, name: &str) -> anyhow::Result<()> {
    // Before anything else registers: the admin must be account 1 on every run, for the run
    // to be the same every time.
    server.create_admin(ADMIN_EMAIL)?;

    let mut st = Command::new(venv.join("bin/st"));
    st.current_dir(&server.dir)
        .arg("--config-file")
        .arg(root().join("xtask/fuzz/schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", server.url)])
        // No `--checks`: every check is on by default, and the flag would override the
        // per-operation exceptions of the configuration file. One worker, so that the seed
        // fixes the whole run.
        .args([
            "--seed",
            SEED,
            "--max-examples",
            MAX_EXAMPLES,
            "--workers",
            "1",
        ])
        .args(["--no-color", "--generation-database", "none"])
        .env("SCHEMATHESIS_HOOKS", "warden_hooks")
        .env("PYTHONPATH", root().join("xtask/fuzz"))
        .env("WARDEN_FUZZ_URL", &server.url)
        .env("WARDEN_FUZZ_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("WARDEN_FUZZ_PASSWORD", PASSWORD);
    exec(st).with_context(|| {
        format!("schemathesis found problems (above); the server log is target/{name}/warden.log")
    })
}
