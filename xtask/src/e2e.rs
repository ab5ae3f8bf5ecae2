//! `cargo xtask e2e`: Swagger UI's Authorize button, in headless Chromium, logs in through
//! `/login` and calls a protected operation with the token (contract section 1). The script is
//! `xtask/e2e/swagger_ui.py` (Playwright, from the xtask venv); Chromium is Debian's.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::served::Served;
use crate::{exec, python, root};

/// Chromium: `$CHROMIUM`, or the first of the usual names on the PATH.
fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Ok(path.into());
    }
    let found = std::env::var_os("PATH").into_iter().find_map(|path| {
        std::env::split_paths(&path).find_map(|dir| {
            ["chromium", "chromium-browser"]
                .iter()
                .map(|name| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    });
    match found {
        Some(path) => Ok(path),
        None => bail!(
            "the Swagger UI check needs Chromium: `apt-get install chromium` (which .ci/run does \
             when it can), or point CHROMIUM at one"
        ),
    }
}

pub(crate) fn run() -> anyhow::Result<()> {
    let chromium = chromium()?;
    let venv = python::venv()?;
    let server = Served::start("e2e-run", None)?;
    let mut script = Command::new(venv.join("bin/python"));
    script
        .arg(root().join("xtask/e2e/swagger_ui.py"))
        .env("WARDEN_E2E_URL", &server.url)
        .env("WARDEN_E2E_CHROMIUM", &chromium)
        .env("WARDEN_E2E_SCREENSHOT", server.dir.join("swagger-ui.png"));
    exec(script)
        .context("the Swagger UI check failed; see target/e2e-run/ for the screenshot and log")
}
