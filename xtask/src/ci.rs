//! `cargo xtask ci`.

use std::time::Instant;

use crate::{cargo, e2e, exec, fuzz, openapi, postgres};

pub(crate) fn run(force_throwaway_postgres: bool) -> anyhow::Result<()> {
    let started = Instant::now();

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    exec(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    exec(clippy)?;

    // The PostgreSQL half of every contract test needs a server. It is found or started here,
    // never skipped: without one this fails and says why.
    let postgres = postgres::find_or_start(force_throwaway_postgres)?;
    eprintln!("\n==> PostgreSQL for the tests: {}", postgres.describe());

    // The email tests run a real SMTP server, aiosmtpd, from the pinned Python tools.
    let python = crate::python::venv()?.join("bin/python");

    let mut tests = cargo();
    if has_nextest() {
        tests.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]);
    } else {
        tests.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
    }
    tests
        .env("DATABASE_URL", postgres.url())
        .env("WARDEN_TEST_PYTHON", &python);
    exec(tests)?;

    // The PostgreSQL half again, through PgBouncer in transaction-pooling mode, as
    // DATABASE_TRANSACTION_POOLING serves it: the repository, throttle and HTTP suites. A small
    // pool per database, so that server connections are shared between clients.
    eprintln!("\n==> the PostgreSQL tests again, through PgBouncer (transaction pooling)");
    let bouncer = crate::pgbouncer::PgBouncer::start("tests", postgres.url(), 3, 5)?;
    let mut pooled = cargo();
    if has_nextest() {
        pooled.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
            "-E",
            "test(/(^|::)postgres::/)",
        ]);
    } else {
        pooled.args([
            "test",
            "--workspace",
            "--locked",
            "--no-fail-fast",
            "--",
            "postgres::",
        ]);
    }
    pooled
        .env("DATABASE_URL", postgres.url())
        .env("WARDEN_TEST_POOLER_URL", &bouncer.url)
        .env("WARDEN_TEST_PYTHON", &python);
    exec(pooled)?;
    drop(bouncer);
    drop(postgres);

    eprintln!("\n==> two instances behind HAProxy, through PgBouncer, and a rolling restart");
    crate::cluster::run()?;

    openapi::check()?;

    eprintln!("\n==> TLS to PostgreSQL and to mail servers");
    crate::tls::run()?;

    eprintln!("\n==> the container image's Dockerfile and compose.yaml");
    crate::container::run()?;

    // Last, as it is the slowest to fail: the running server against its own document.
    eprintln!("\n==> fuzzing the running server with schemathesis");
    fuzz::run()?;

    eprintln!("\n==> Swagger UI in headless Chromium");
    e2e::run()?;

    // The harness, not the figures: every scenario runs for a second or two and must answer
    // as expected. Benchmarks are never timed tests.
    eprintln!("\n==> the benchmark harness, quickly");
    crate::bench::run(&["--quick"])?;

    eprintln!("\nci passed in {:.0?}", started.elapsed());
    Ok(())
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}
