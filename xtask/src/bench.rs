//! `cargo xtask bench [--quick] [--baseline FILE]`: the release build of `warden` under load, on
//! SQLite and on PostgreSQL, measured from the outside.
//!
//! Each run starts `warden` on a fresh database with throttling off, seeds it (through the API
//! where a password is needed, through SQL for bulk data), and drives each scenario with wrk
//! (`xtask/bench/wrk.lua`). For every scenario it records requests per second, latency p50 and
//! p99 as wrk measures them, the server's CPU time per request (utime + stime of its process,
//! from `/proc/<pid>/stat`, before and after), PostgreSQL's CPU time per request (the same, summed
//! over the server's processes) and the server's peak RSS during the scenario (`VmHWM`, reset
//! before each scenario through `/proc/<pid>/clear_refs`). It checks that every answer had the
//! status the scenario expects, and fails otherwise; it never fails on a timing.
//!
//! The results go to `target/bench/results.md` and `target/bench/results.json`; `--baseline FILE`
//! prints each figure's ratio to an earlier `results.json`. `--quick` runs each scenario for a
//! second or two, which checks the harness, not the figures: `cargo xtask ci` runs it.
//!
//! Here: the options, the databases in turn and the server; in `bench/`: the database
//! ([`database`]), its seeding ([`seed`]), the scenarios ([`scenarios`]), one measured load and
//! the process accounting ([`measure`]), the probe beside the flood ([`probe`]) and the tables
//! ([`report`]).

mod database;
mod measure;
mod probe;
mod report;
mod scenarios;
mod seed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::net;
use crate::postgres;
use crate::root;
use crate::warden::{Launch, Probe, Profile, Warden};
use database::Database;
use report::{compare, machine, markdown};

const PASSWORD: &str = "correct horse battery";
const SECRET: &str = "a-bench-signing-secret-of-more-than-32-bytes";
/// Connections for the ordinary scenarios.
const CONNECTIONS: u32 = 32;
/// Connections of the login flood.
const FLOOD_CONNECTIONS: u32 = 64;
/// The rate of `GET /users/me` probes beside the flood: an interactive user, not a second load.
const PROBES_PER_SECOND: u32 = 100;
/// Logins sent at once by clients that hang up.
const ABANDONED_LOGINS: usize = 200;
const ABANDON_AFTER: Duration = Duration::from_millis(50);
/// The large data set.
const BIG_POSTS: u32 = 100_000;
const BIG_VOTERS: u32 = 1_000;
const VOTES_PER_VOTER: u32 = 1_000;
/// The searches of the list scenarios (see [`seed`]'s titles): a word that few titles hold, and
/// one that every title holds, the worst case for a trigram index.
const SEARCH: &str = "w4242";
const COMMON_SEARCH: &str = "about";

struct Options {
    quick: bool,
    baseline: Option<PathBuf>,
    /// `sqlite`, `postgres` or `pgbouncer`: only that database.
    only: Option<String>,
}

pub(crate) fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut options = Options {
        quick: false,
        baseline: None,
        only: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--quick" => options.quick = true,
            "--backend" => {
                let name = args
                    .next()
                    .context("--backend needs sqlite, postgres or pgbouncer")?;
                ensure!(
                    matches!(*name, "sqlite" | "postgres" | "pgbouncer"),
                    "--backend takes sqlite, postgres or pgbouncer"
                );
                options.only = Some((*name).to_owned());
            }
            "--baseline" => {
                options.baseline = Some(args.next().context("--baseline needs a file")?.into());
            }
            other => bail!("unknown bench option {other}"),
        }
    }
    ensure!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is not installed (`apt-get install wrk`; .ci/run installs it)"
    );
    Profile::Release.build()?;

    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    let mut results = Vec::new();
    let wanted = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    if wanted("sqlite") {
        results.extend(backend_run(Backend::Sqlite, &options, &out)?);
    }
    if wanted("postgres") || wanted("pgbouncer") {
        let postgres = postgres::find_or_start(false)?;
        if wanted("postgres") {
            results.extend(backend_run(
                Backend::Postgres(postgres.url().to_owned()),
                &options,
                &out,
            )?);
        }
        if wanted("pgbouncer") {
            results.extend(backend_run(
                Backend::PgBouncer(postgres.url().to_owned()),
                &options,
                &out,
            )?);
        }
    }

    let machine = machine();
    let table = markdown(&results, &machine, &options);
    println!("\n{table}");
    std::fs::write(out.join("results.md"), &table)?;
    let document = json!({ "machine": machine, "quick": options.quick, "results": results });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&document)?,
    )?;
    eprintln!("wrote {}", out.join("results.{md,json}").display());
    if let Some(baseline) = &options.baseline {
        println!("{}", compare(&results, baseline)?);
    }
    Ok(())
}

enum Backend {
    Sqlite,
    /// The server's admin URL; the bench makes a database of its own there.
    Postgres(String),
    /// As `Postgres`, with Warden reaching it through PgBouncer in transaction-pooling mode
    /// (`DATABASE_TRANSACTION_POOLING`), as docs/deploy.md describes.
    PgBouncer(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::PgBouncer(_) => "pgbouncer",
        }
    }
}

/// The release `warden`, running.
struct Server {
    warden: Warden,
    addr: String,
}

impl Server {
    fn start(database: &Database, dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(database, dir, "warden", &[])
    }

    /// As [`Server::start`], logging to `dir/<name>.log`, with `env` added (or overriding).
    fn start_with(
        database: &Database,
        dir: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let warden = Launch::new(&Profile::Release.binary(), dir)
            .env("DATABASE_URL", &database.serve_url)
            .env(
                "DATABASE_TRANSACTION_POOLING",
                database.pooler.is_some().to_string(),
            )
            .env("JWT_SECRET", SECRET)
            .env("ACCESS_TOKEN_EXPIRE_MINUTES", "1440")
            .unthrottled()
            .env("RUST_LOG", "warn")
            .envs(env)
            .serve(
                net::free_port()?,
                &dir.join(format!("{name}.log")),
                Probe::Ready,
            )?;
        Ok(Self {
            addr: warden.addr(),
            warden,
        })
    }

    fn pid(&self) -> u32 {
        self.warden.pid()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn backend_run(backend: Backend, options: &Options, out: &Path) -> anyhow::Result<Vec<Value>> {
    let name = backend.name();
    eprintln!("\n==> bench on {name}");
    let dir = out.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let database = Database::fresh(&backend, &dir)?;
    let result = scenarios::run(&database, &dir, options);
    database.drop_database();
    result
}
