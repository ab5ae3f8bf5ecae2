//! `cargo xtask e2e`, in headless Chromium (Debian's), driven by Playwright from the xtask venv:
//! the committed OpenAPI document is validated (openapi-spec-validator); Swagger UI's Authorize
//! button logs in through `/login` and calls a protected operation with the token, and so does
//! a pasted personal access token (contract sections 1 and 13, `xtask/e2e/swagger_ui.py`); and a page on another origin,
//! allowed by `CORS_ALLOWED_ORIGINS`, logs in, calls `GET /users/me` and reads the exposed headers, while the same page on
//! an origin not on the list is blocked (contract section 7, `xtask/e2e/cors.py`). Then Authlib,
//! a standard OAuth2 client library, discovers the endpoints and logs in, refreshes,
//! introspects and revokes (contract section 13, `xtask/e2e/authlib_client.py`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::served::Served;
use crate::{exec, net, python, root};

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
    // The committed document (which `openapi --check` holds equal to the code's) against the
    // OpenAPI 3.0 specification, by an independent validator: both security schemes included.
    let mut validate = Command::new(venv.join("bin/openapi-spec-validator"));
    validate.arg(root().join("docs/openapi.json"));
    exec(validate).context("docs/openapi.json is not a valid OpenAPI document")?;
    let server = Served::start("e2e-run", None)?;
    let mut script = Command::new(venv.join("bin/python"));
    script
        .arg(root().join("xtask/e2e/swagger_ui.py"))
        .env("WARDEN_E2E_URL", &server.url)
        .env("WARDEN_E2E_CHROMIUM", &chromium)
        .env("WARDEN_E2E_SCREENSHOT", server.dir.join("swagger-ui.png"));
    exec(script)
        .context("the Swagger UI check failed; see target/e2e-run/ for the screenshot and log")?;
    cors(&chromium, &venv)?;
    authlib(&venv)
}

/// Discovery, the password and refresh grants, introspection and revocation through Authlib, a
/// standard OAuth2 client library (`xtask/e2e/authlib_client.py`).
fn authlib(venv: &std::path::Path) -> anyhow::Result<()> {
    const ISSUER: &str = "https://warden.example";
    const ADMIN: &str = "resource-server@example.com";
    let server = Served::start_with("e2e-authlib", None, &[("JWT_ISSUER", ISSUER)])?;
    server.create_admin(ADMIN)?;
    let mut script = Command::new(venv.join("bin/python"));
    script
        .arg(root().join("xtask/e2e/authlib_client.py"))
        .env("WARDEN_E2E_URL", &server.url)
        .env("WARDEN_E2E_ISSUER", ISSUER)
        .env("WARDEN_E2E_ADMIN", ADMIN)
        .env("WARDEN_E2E_PASSWORD", crate::served::PASSWORD);
    exec(script).context("the Authlib check failed; see target/e2e-authlib/warden.log")
}

/// A page on another origin, allowed by CORS_ALLOWED_ORIGINS, logs in and calls
/// `GET /users/me` in headless Chromium with its own `X-Request-Id` and a `traceparent` (the
/// browser sends a real preflight for them), then reads the exposed `X-Request-Id`, a 401's
/// `WWW-Authenticate` and a 429's `Retry-After`; the same page from an origin not on the list
/// is blocked by the browser.
fn cors(chromium: &std::path::Path, venv: &std::path::Path) -> anyhow::Result<()> {
    let (allowed, other) = (net::free_port()?, net::free_port()?);
    let origin = format!("http://127.0.0.1:{allowed}");
    // The per-username budget on (the checks run unthrottled otherwise), so that the page meets
    // a 429 and reads its Retry-After.
    let server = Served::start_with(
        "e2e-cors",
        None,
        &[
            ("CORS_ALLOWED_ORIGINS", &origin),
            ("LOGIN_MAX_FAILURES_PER_USERNAME", "3"),
        ],
    )?;
    let mut script = Command::new(venv.join("bin/python"));
    script
        .arg(root().join("xtask/e2e/cors.py"))
        .env("WARDEN_E2E_URL", &server.url)
        .env("WARDEN_E2E_CHROMIUM", chromium)
        .env("WARDEN_E2E_ALLOWED_PORT", allowed.to_string())
        .env("WARDEN_E2E_OTHER_PORT", other.to_string());
    exec(script).context("the CORS check in Chromium failed; see target/e2e-cors/warden.log")
}
