//! `cargo xtask tls`: Warden reaching PostgreSQL and its mail server over TLS, checked against
//! real servers.
//!
//! Starts two throwaway PostgreSQL servers, one with `ssl = on` and a certificate for
//! `localhost` signed by a certificate authority made here with openssl, one without TLS, and
//! runs the real `warden` against them: `check-config` and `migrate` with `sslmode=verify-full`
//! and the right root succeed; with the wrong host name or the wrong root they refuse, saying
//! why; `sslmode=require` against the server without TLS refuses. Then the same certificate
//! serves mail servers ([`smtp`]).

mod smtp;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail, ensure};

use crate::warden::{Launch, Profile};
use crate::{exec, postgres};

const SECRET: &str = "a-tls-check-signing-secret-of-more-than-32-bytes";

pub(crate) fn run() -> anyhow::Result<()> {
    let warden = Profile::Debug.build()?;

    let dir = std::env::temp_dir().join(format!("warden-xtask-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = check(&warden, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn check(warden: &Path, dir: &Path) -> anyhow::Result<()> {
    certificate_authority(dir, "ca", "Warden TLS check CA")?;
    certificate_authority(dir, "other-ca", "Somebody else's CA")?;
    server_certificate(dir)?;
    let path = |name: &str| dir.join(name).display().to_string();
    let tls = postgres::start_throwaway(
        "tls",
        &format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            path("server.crt"),
            path("server.key")
        ),
    )?;
    let plain = postgres::start_throwaway("plain", "-c ssl=off")?;
    let url = |host: &str, port: u16, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?{query}")
    };
    let verify = |root: &str| format!("sslmode=verify-full&sslrootcert={}", path(root));

    let right = url("localhost", tls.port(), &verify("ca.crt"));
    expect(
        warden,
        dir,
        &right,
        &["check-config"],
        Ok("configuration ok"),
    )?;
    expect(warden, dir, &right, &["migrate"], Ok("applied"))?;
    // The migrations went over TLS to the server: it says the connection was encrypted.
    let mut psql = Command::new("psql");
    psql.arg(&right).args([
        "-Atqc",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    ]);
    let output = psql.output().context("psql is not installed")?;
    ensure!(
        String::from_utf8_lossy(&output.stdout).trim() == "t",
        "psql with the same URL did not use TLS"
    );

    let wrong_host = url("127.0.0.1", tls.port(), &verify("ca.crt"));
    expect(
        warden,
        dir,
        &wrong_host,
        &["check-config"],
        Err("not valid for name"),
    )?;
    let wrong_root = url("localhost", tls.port(), &verify("other-ca.crt"));
    expect(
        warden,
        dir,
        &wrong_root,
        &["check-config"],
        Err("UnknownIssuer"),
    )?;
    let no_tls = url("127.0.0.1", plain.port(), "sslmode=require");
    expect(
        warden,
        dir,
        &no_tls,
        &["check-config"],
        Err("server does not support TLS"),
    )?;
    let plain_ok = url("127.0.0.1", plain.port(), "sslmode=prefer");
    expect(
        warden,
        dir,
        &plain_ok,
        &["check-config"],
        Ok("configuration ok"),
    )?;
    eprintln!("TLS to PostgreSQL: verify-full, wrong host, wrong root and require all as expected");
    drop((tls, plain));
    smtp::check(dir)
}

/// Runs `warden ARGS` with `database_url`; `expected` is Ok(text on stdout) for success or
/// Err(text on stderr) for a refusal.
fn expect(
    warden: &Path,
    dir: &Path,
    database_url: &str,
    args: &[&str],
    expected: Result<&str, &str>,
) -> anyhow::Result<()> {
    let output = Launch::new(warden, dir)
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", SECRET)
        .args(args)
        .command()
        .output()
        .context("cannot run warden")?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    eprintln!(
        "warden {} with {database_url}: {}{}",
        args.join(" "),
        stdout.trim(),
        stderr.trim()
    );
    match expected {
        Ok(text) if output.status.success() && stdout.contains(text) => Ok(()),
        Err(text) if !output.status.success() && stderr.contains(text) => Ok(()),
        _ => bail!("expected {expected:?}"),
    }
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new("openssl");
    command.current_dir(dir).args(args);
    exec(command).context("openssl is needed for the TLS check (`apt-get install openssl`)")
}

fn certificate_authority(dir: &Path, name: &str, subject: &str) -> anyhow::Result<()> {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={subject}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    )
}

/// A certificate for `localhost`, signed by `ca`, readable by the server only.
fn server_certificate(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n")?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    )?;
    // PostgreSQL refuses a key others can read, and runs as `postgres` when we are root.
    let mut chmod = Command::new("chmod");
    chmod.arg("600").arg(dir.join("server.key"));
    exec(chmod)?;
    if postgres::is_root() {
        let mut chown = Command::new("chown");
        chown
            .arg("postgres:")
            .arg(dir.join("server.key"))
            .arg(dir.join("server.crt"));
        exec(chown)?;
    }
    Ok(())
}
