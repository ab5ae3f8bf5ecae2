//! Warden reaching its mail server over TLS: real aiosmtpd servers on loopback, one speaking
//! TLS from the first byte (`smtps://`), one offering and requiring STARTTLS, one plain, all
//! with the certificate for `localhost` that [`super`] made. A running `warden` registers an
//! account, which queues a verification mail, and the check reads what the server delivered or
//! what Warden logged when it gave the mail up (`MAIL_MAX_ATTEMPTS=1`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::json;

use crate::net::http;
use crate::python;
use crate::served::{PASSWORD, Served};
use crate::smtp::{Listener, MailServer};

pub(super) fn check(certificates: &Path) -> anyhow::Result<()> {
    let python = python::venv()?.join("bin/python");
    let smtps = MailServer::start(&python, certificates, Listener::Smtps)?;
    let starttls = MailServer::start(&python, certificates, Listener::StartTls)?;
    let plain = MailServer::start(&python, certificates, Listener::Plain)?;
    let root = |name: &str| Some(certificates.join(name));
    let ca = || root("ca.crt");

    // Trusted: the mail arrives, over TLS, as the servers take nothing in the clear.
    let url = format!("smtps://localhost:{}", smtps.port);
    expect(&url, ca(), &smtps, Ok(()))?;
    let url = format!("smtp://localhost:{}?tls=required", starttls.port);
    expect(&url, ca(), &starttls, Ok(()))?;

    // Not trusted: the system's roots (no SMTP_ROOT_CERT), another authority's root, a name
    // the certificate is not for, and STARTTLS required of a server without it.
    let url = format!("smtps://localhost:{}", smtps.port);
    expect(&url, None, &smtps, Err("UnknownIssuer"))?;
    expect(&url, root("other-ca.crt"), &smtps, Err("UnknownIssuer"))?;
    let url = format!("smtps://127.0.0.1:{}", smtps.port);
    expect(&url, ca(), &smtps, Err("not valid for name"))?;
    let url = format!("smtp://localhost:{}?tls=required", plain.port);
    expect(&url, ca(), &plain, Err("STARTTLS is not supported"))?;
    eprintln!(
        "TLS to the mail server: smtps:// and STARTTLS with the right root deliver; the system's \
         roots, a wrong root or host, and required STARTTLS without it refuse"
    );
    Ok(())
}

/// Runs `warden` with `SMTP_URL=url` and `SMTP_ROOT_CERT=root`, registers an account, and
/// expects its verification mail in `server`'s maildir (`Ok`) or a log line giving it up with
/// `Err`'s text and nothing delivered.
fn expect(
    url: &str,
    root: Option<PathBuf>,
    server: &MailServer,
    expected: Result<(), &str>,
) -> anyhow::Result<()> {
    let root = root.map(|path| path.display().to_string());
    let mut env = vec![
        ("SMTP_URL", url),
        ("MAIL_FROM", "Warden <warden@localhost>"),
        ("MAIL_MAX_ATTEMPTS", "1"),
    ];
    if let Some(root) = &root {
        env.push(("SMTP_ROOT_CERT", root));
    }
    let warden = Served::start_with("tls-smtp", None, &env)?;
    let before = server.mails().len();
    let body = json!({"email": "ann@example.com", "password": PASSWORD}).to_string();
    let addr = warden.url.trim_start_matches("http://");
    let json = [("Content-Type", "application/json")];
    let (status, answer) = http(addr, "POST", "/users", &json, &body)?;
    ensure!(status == 201, "registration answered {status}: {answer}");

    let log_path = warden.dir.join("warden.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let what = format!("{url} with SMTP_ROOT_CERT={root:?}");
    loop {
        let delivered = server.mails().len() > before;
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let gave_up = log.lines().find(|line| line.contains("giving up"));
        match (expected, delivered, gave_up) {
            (Ok(()), true, _) => {
                eprintln!("{what}: delivered");
                return Ok(());
            }
            (Err(reason), false, Some(line)) if line.contains(reason) => {
                eprintln!("{what}: refused ({reason})");
                return Ok(());
            }
            (_, false, None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => bail!("{what}: expected {expected:?}, delivered: {delivered}; log:\n{log}"),
        }
    }
}
