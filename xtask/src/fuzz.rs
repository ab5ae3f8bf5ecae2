//! `cargo xtask fuzz`: schemathesis against a running `warden`, with every check, for a fixed
//! seed and a bounded number of examples per operation. The hooks in `xtask/fuzz/` log the
//! fuzzer in through `/login`; `xtask/fuzz/schemathesis.toml` holds its configuration.

use std::process::Command;

use anyhow::Context;

use crate::served::{PASSWORD, Served};
use crate::{exec, python, root};

const SEED: &str = "20261121";
const MAX_EXAMPLES: &str = "25";
const ADMIN_EMAIL: &str = "fuzz-admin@example.com";

pub(crate) fn run() -> anyhow::Result<()> {
    let venv = python::venv()?;
    // No earlier run's accounts: a fresh database for every run.
    let server = Served::start("fuzz-run")?;
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
    exec(st).context(
        "schemathesis found problems (above); the server log is target/fuzz-run/warden.log",
    )
}
