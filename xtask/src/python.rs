//! The Python tools of `cargo xtask` (schemathesis, Playwright), pinned in
//! `xtask/python-requirements.txt` and installed into a virtual environment under `target/`, so
//! that nothing is installed system-wide.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::{exec, root};

/// The virtual environment, made on first use and brought up to date with the requirements.
pub(crate) fn venv() -> anyhow::Result<PathBuf> {
    let venv = root().join("target/xtask-venv");
    let requirements = root().join("xtask/python-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).context("cannot read the requirements")?;
    // A copy of the requirements the environment was filled from.
    let stamp = venv.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        return Ok(venv);
    }
    if !venv.join("bin/pip").is_file() {
        let mut make = Command::new("python3");
        make.args(["-m", "venv"]).arg(&venv);
        exec(make).context(
            "cannot make a Python virtual environment: install Python 3 with venv \
             (`apt-get install python3-venv`, which .ci/run does when it can)",
        )?;
    }
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--requirement",
        ])
        .arg(&requirements);
    exec(install)?;
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}
