//! `cargo xtask container`: what can be checked of the container image here. No image is built:
//! its base images (`rust`, `debian`, `postgres`) come from a container registry this project's
//! machines cannot reach. So the Dockerfile goes through hadolint (pinned in
//! `xtask/python-requirements.txt`), warnings included, and compose.yaml is parsed and checked
//! for what the README promises: PostgreSQL, Warden built from this Dockerfile and waiting for
//! the database's health check, and JWT_SECRET required.

use std::process::Command;

use anyhow::{Context, ensure};

use crate::{exec, python, root};

pub(crate) fn run() -> anyhow::Result<()> {
    let venv = python::venv()?;
    let mut hadolint = Command::new(venv.join("bin/hadolint"));
    hadolint
        .args(["--failure-threshold", "warning"])
        .arg(root().join("Dockerfile"));
    exec(hadolint).context("hadolint found problems in the Dockerfile (above)")?;

    let check = r#"
import sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
services = compose["services"]
warden, postgres = services["warden"], services["postgres"]
assert warden["build"] == ".", "warden is built from this Dockerfile"
assert warden["depends_on"]["postgres"]["condition"] == "service_healthy"
assert "healthcheck" in postgres
assert warden["environment"]["DATABASE_URL"].startswith("postgres://")
assert "${JWT_SECRET:?" in warden["environment"]["JWT_SECRET"], "JWT_SECRET is required"
print("compose.yaml: ok")
"#;
    let mut compose = Command::new(venv.join("bin/python"));
    compose.args(["-c", check]).arg(root().join("compose.yaml"));
    exec(compose).context("compose.yaml is not what the README says")?;

    let dockerfile = std::fs::read_to_string(root().join("Dockerfile"))?;
    for needed in [
        "USER 10001",
        "HEALTHCHECK",
        "/health/ready",
        "WARDEN_ADDR=0.0.0.0:8000",
    ] {
        ensure!(dockerfile.contains(needed), "the Dockerfile lacks {needed}");
    }
    Ok(())
}
