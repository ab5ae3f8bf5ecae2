//! `cargo xtask openapi [--check]`: `docs/openapi.json` is generated from the code and
//! committed, so that API changes show up in review; CI checks it is current.

use anyhow::{Context, bail};

use crate::{cargo, root};

const PATH: &str = "docs/openapi.json";

fn generate() -> anyhow::Result<String> {
    let output = cargo()
        .args([
            "run",
            "--quiet",
            "--locked",
            "--package",
            "warden",
            "--",
            "openapi",
        ])
        .output()
        .context("cannot run `warden openapi`")?;
    if !output.status.success() {
        bail!(
            "`warden openapi` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("the OpenAPI document is not UTF-8")
}

pub(crate) fn write() -> anyhow::Result<()> {
    let document = generate()?;
    std::fs::write(root().join(PATH), document).with_context(|| format!("cannot write {PATH}"))?;
    eprintln!("wrote {PATH}");
    Ok(())
}

pub(crate) fn check() -> anyhow::Result<()> {
    eprintln!("\n==> checking that {PATH} matches the code");
    let generated = generate()?;
    let committed = std::fs::read_to_string(root().join(PATH))
        .with_context(|| format!("cannot read {PATH}"))?;
    if committed != generated {
        bail!("{PATH} is out of date: run `cargo xtask openapi` and commit the result");
    }
    Ok(())
}
