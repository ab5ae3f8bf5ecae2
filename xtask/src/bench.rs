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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};

use crate::net::{self, http};
use crate::postgres::{self, psql};
use crate::warden::{Launch, Probe, Profile, Warden};
use crate::{exec, root};

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
/// The searches of the list scenarios (see [`title`]): a word that few titles hold, and one
/// that every title holds, the worst case for a trigram index.
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

/// A fresh database and the SQL shell to reach it.
struct Database {
    /// Where psql and sqlite3 reach it.
    url: String,
    /// Where Warden reaches it, and whether that is through a transaction pooler.
    serve_url: String,
    pooler: Option<crate::pgbouncer::PgBouncer>,
    backend: &'static str,
    admin_url: Option<String>,
    name: String,
}

impl Database {
    fn fresh(backend: &Backend, dir: &Path) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}", dir.join("warden.db").display()),
                serve_url: format!("sqlite://{}", dir.join("warden.db").display()),
                pooler: None,
                backend: "sqlite",
                admin_url: None,
                name: dir.join("warden.db").display().to_string(),
            }),
            Backend::Postgres(admin) => {
                let name = "warden_bench".to_owned();
                let url = postgres::fresh_database(admin, &name)?;
                Ok(Self {
                    serve_url: url.clone(),
                    url,
                    pooler: None,
                    backend: "postgres",
                    admin_url: Some(admin.clone()),
                    name,
                })
            }
            Backend::PgBouncer(admin) => {
                let name = "warden_bench".to_owned();
                let url = postgres::fresh_database(admin, &name)?;
                // Migrated directly, as through the pooler it cannot be.
                let mut migrate = Launch::new(&Profile::Release.binary(), dir)
                    .env("DATABASE_URL", &url)
                    .args(&["migrate"])
                    .command();
                migrate.stdout(Stdio::null());
                exec(migrate)?;
                // As many server connections as Warden's pool would open by itself.
                // Server connections stay open, so that their CPU time is counted.
                let pooler = crate::pgbouncer::PgBouncer::start("bench", admin, 10, 3600)?;
                Ok(Self {
                    serve_url: pooler.database_url(&name),
                    url,
                    pooler: Some(pooler),
                    backend: "pgbouncer",
                    admin_url: Some(admin.clone()),
                    name,
                })
            }
        }
    }

    /// Runs `sql` (several statements) in one transaction.
    fn execute(&self, sql: &str) -> anyhow::Result<String> {
        match &self.admin_url {
            None => {
                let mut sqlite = Command::new("sqlite3");
                sqlite
                    .args(["-bail", &self.name])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped());
                let mut child = sqlite
                    .spawn()
                    .context("sqlite3 is not installed (`apt-get install sqlite3`)")?;
                child
                    .stdin
                    .take()
                    .context("no stdin")?
                    .write_all(format!("BEGIN;\n{sql}\nCOMMIT;\n").as_bytes())?;
                let output = child.wait_with_output()?;
                ensure!(output.status.success(), "sqlite3 failed on:\n{sql}");
                Ok(String::from_utf8(output.stdout)?)
            }
            Some(_) => psql(&self.url, &format!("BEGIN;\n{sql}\nCOMMIT;")),
        }
    }

    fn drop_database(&self) {
        if let Some(admin) = &self.admin_url {
            postgres::drop_database(admin, &self.name);
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
            .env("LOGIN_MAX_FAILURES_PER_USERNAME", "0")
            .env("LOGIN_MAX_FAILURES_PER_ADDRESS", "0")
            .env("REGISTRATIONS_PER_ADDRESS", "0")
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

/// Registers `email` and logs in: (user id, access token).
fn account(server: &Server, email: &str) -> anyhow::Result<(i64, String)> {
    let json = [("Content-Type", "application/json")];
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let (status, answer) = http(&server.addr, "POST", "/users", &json, &body)?;
    ensure!(status == 201, "registration answered {status}: {answer}");
    let id = serde_json::from_str::<Value>(&answer)?["id"]
        .as_i64()
        .context("no id")?;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, answer) = http(&server.addr, "POST", "/login", &form, &login_form(email))?;
    ensure!(status == 200, "login answered {status}: {answer}");
    let token = serde_json::from_str::<Value>(&answer)?["access_token"]
        .as_str()
        .context("no token")?
        .to_owned();
    Ok((id, token))
}

/// A personal access token of the account `token` logged in.
fn personal_token(server: &Server, token: &str) -> anyhow::Result<String> {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let body = json!({
        "name": "bench",
        "scopes": "profile",
        "expires_in_days": 1,
        "current_password": PASSWORD,
    })
    .to_string();
    let (status, answer) = http(&server.addr, "POST", "/users/me/tokens", &headers, &body)?;
    ensure!(
        status == 201,
        "making a personal token answered {status}: {answer}"
    );
    Ok(serde_json::from_str::<Value>(&answer)?["token"]
        .as_str()
        .context("no token")?
        .to_owned())
}

fn login_form(email: &str) -> String {
    format!(
        "username={}&password={}",
        email.replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    )
}

/// CPU time (user + system) of process `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    process_cpu(&format!("/proc/{pid}/stat")).unwrap_or(0.0)
}

/// The server processes serving the bench database's connections (not autovacuum, not the
/// checkpointer, not other databases), by their process ids.
fn postgres_backends(database: &Database) -> Vec<u32> {
    let Some(admin) = &database.admin_url else {
        return Vec::new();
    };
    psql(
        admin,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = '{}' \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            database.name
        ),
    )
    .map(|pids| {
        pids.lines()
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

fn postgres_cpu_seconds(backends: &[u32]) -> f64 {
    backends.iter().map(|pid| cpu_seconds(*pid)).sum()
}

fn process_cpu(stat: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

/// Peak resident memory of `pid` since the last reset, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn reset_peak_rss(pid: u32) {
    // Writing 5 resets VmHWM to the current RSS (Linux 4.0 and later).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// One request, repeated by wrk.
struct Load<'a> {
    method: &'a str,
    path: String,
    expected: u16,
    headers: Vec<String>,
    body: Option<String>,
    connections: u32,
    seconds: u64,
}

impl Load<'_> {
    fn command(&self, server: &Server) -> Command {
        let mut wrk = Command::new("wrk");
        wrk.args([
            "-t",
            "2",
            "-c",
            &self.connections.to_string(),
            "-d",
            &format!("{}s", self.seconds),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(root().join("xtask/bench/wrk.lua"))
        .arg(server.url(""))
        .args(["--", self.method, &self.path, &self.expected.to_string()])
        .args(&self.headers);
        if let Some(body) = &self.body {
            wrk.arg(format!("@{body}"));
        }
        wrk.stdout(Stdio::piped()).stderr(Stdio::piped());
        wrk
    }
}

/// What wrk reported for one load.
struct Report {
    requests: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn report(name: &str, load: &Load<'_>, output: &std::process::Output) -> anyhow::Result<Report> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with('{'))
        .with_context(|| {
            format!(
                "{name}: wrk printed no summary:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let summary: Value = serde_json::from_str(line)?;
    let requests = summary["requests"].as_u64().unwrap_or(0);
    let statuses = summary["statuses"].as_object().cloned().unwrap_or_default();
    let expected = statuses
        .get(&load.expected.to_string())
        .and_then(Value::as_u64)
        .unwrap_or(0);
    ensure!(requests > 0, "{name}: no request was answered");
    ensure!(
        expected == requests,
        "{name}: {requests} answers, {expected} of them {}: {statuses:?}",
        load.expected
    );
    ensure!(
        summary["socket_errors"].as_u64() == Some(0),
        "{name}: socket errors: {summary}"
    );
    Ok(Report {
        requests,
        seconds: summary["duration_us"].as_f64().unwrap_or(1.0) / 1e6,
        p50_ms: summary["p50_us"].as_f64().unwrap_or(0.0) / 1000.0,
        p99_ms: summary["p99_us"].as_f64().unwrap_or(0.0) / 1000.0,
    })
}

/// Measures `loads` run at once; the first is the scenario's own, the others run beside it.
fn measure(
    scenario: &str,
    database: &Database,
    server: &Server,
    loads: &[Load<'_>],
) -> anyhow::Result<Value> {
    let backend = database.backend;
    let pid = server.pid();
    reset_peak_rss(pid);
    let backends = postgres_backends(database);
    let pooler = database
        .pooler
        .as_ref()
        .map(crate::pgbouncer::PgBouncer::pid);
    let pooler_cpu = pooler.map(cpu_seconds);
    let (cpu, db_cpu) = (cpu_seconds(pid), postgres_cpu_seconds(&backends));
    let children: Vec<Child> = loads
        .iter()
        .map(|load| load.command(server).spawn().context("cannot run wrk"))
        .collect::<anyhow::Result<_>>()?;
    let outputs: Vec<_> = children
        .into_iter()
        .map(Child::wait_with_output)
        .collect::<Result<_, _>>()?;
    // Backends the pool opened during the scenario count from zero: their whole life was in it.
    let mut after = postgres_backends(database);
    after.retain(|pid| !backends.contains(pid));
    let (cpu, db_cpu) = (
        cpu_seconds(pid) - cpu,
        postgres_cpu_seconds(&backends) + postgres_cpu_seconds(&after) - db_cpu,
    );
    let mut reports = Vec::new();
    for (load, output) in loads.iter().zip(&outputs) {
        reports.push(report(scenario, load, output)?);
    }
    let all: u64 = reports.iter().map(|report| report.requests).sum();
    let main = &reports[0];
    let mut result = json!({
        "scenario": scenario,
        "backend": backend,
        "requests": main.requests,
        "rps": main.requests as f64 / main.seconds,
        "p50_ms": main.p50_ms,
        "p99_ms": main.p99_ms,
        // Per request of every load that ran, as the server cannot tell them apart.
        "cpu_ms_per_request": cpu * 1000.0 / all as f64,
        "peak_rss_mib": peak_rss_mib(pid),
    });
    if backend != "sqlite" {
        result["db_cpu_ms_per_request"] = json!(db_cpu * 1000.0 / all as f64);
    }
    if let (Some(pooler), Some(before)) = (pooler, pooler_cpu) {
        result["pooler_cpu_ms_per_request"] =
            json!((cpu_seconds(pooler) - before) * 1000.0 / all as f64);
    }
    if let Some(beside) = reports.get(1) {
        result["beside_p50_ms"] = json!(beside.p50_ms);
        result["beside_p99_ms"] = json!(beside.p99_ms);
    }
    eprintln!("  {scenario}: {result}");
    Ok(result)
}

/// `GET path` at a fixed rate on one keep-alive connection for `seconds`, as a person using
/// the API does (wrk's closed loop would be a load of its own): every latency, sorted.
fn probe(addr: &str, path: &str, bearer: &str, seconds: u64) -> anyhow::Result<Vec<f64>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\r\n");
    let interval = Duration::from_secs(1) / PROBES_PER_SECOND;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut next = started;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += interval;
        let sent = Instant::now();
        stream.write_all(request.as_bytes())?;
        let status = read_answer(&mut stream)?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        ensure!(status == 200, "probe of {path}: {status}");
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// Reads one HTTP/1.1 answer with a `Content-Length` from a keep-alive connection: its status.
fn read_answer(stream: &mut TcpStream) -> anyhow::Result<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The probe alone, then the login flood with the probe beside it.
fn flood(
    database: &Database,
    server: &Server,
    flood: &Load<'_>,
    bearer: &str,
) -> anyhow::Result<Vec<Value>> {
    let backend = database.backend;
    let alone = probe(&server.addr, "/users/me", bearer, flood.seconds.min(10))?;
    let calm = json!({
        "scenario": format!("GET /users/me at {PROBES_PER_SECOND}/s, alone"),
        "backend": backend,
        "requests": alone.len(),
        "p50_ms": percentile(&alone, 50.0),
        "p99_ms": percentile(&alone, 99.0),
    });
    eprintln!("  {calm}");
    let prober = {
        let (addr, bearer, seconds) = (server.addr.clone(), bearer.to_owned(), flood.seconds);
        std::thread::spawn(move || probe(&addr, "/users/me", &bearer, seconds))
    };
    let mut result = measure(
        &format!(
            "login flood ({FLOOD_CONNECTIONS} connections), GET /users/me at {PROBES_PER_SECOND}/s beside it"
        ),
        database,
        server,
        std::slice::from_ref(flood),
    )?;
    let beside = prober
        .join()
        .map_err(|_| anyhow::anyhow!("the probe panicked"))??;
    result["beside_p50_ms"] = json!(percentile(&beside, 50.0));
    result["beside_p99_ms"] = json!(percentile(&beside, 99.0));
    eprintln!("  with the probe: {result}");
    Ok(vec![calm, result])
}

/// 200 logins sent at once by clients that hang up after 50 ms: the peak memory, and the CPU
/// the server spends after the last client has gone.
fn abandoned_logins(server: &Server, email: &str, backend: &str) -> anyhow::Result<Value> {
    let pid = server.pid();
    reset_peak_rss(pid);
    let body = login_form(email);
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let cpu_before = cpu_seconds(pid);
    let mut streams = Vec::new();
    for _ in 0..ABANDONED_LOGINS {
        let mut stream = TcpStream::connect(&server.addr)?;
        stream.write_all(request.as_bytes())?;
        streams.push(stream);
    }
    std::thread::sleep(ABANDON_AFTER);
    drop(streams);
    let cpu_at_hang_up = cpu_seconds(pid);
    // Long enough for every started hash to end.
    std::thread::sleep(Duration::from_secs(3));
    let cpu_after = cpu_seconds(pid);
    ensure!(
        http(&server.addr, "GET", "/health/live", &[], "")?.0 == 200,
        "abandoned logins: warden is not live any more"
    );
    let result = json!({
        "scenario": "abandoned logins",
        "backend": backend,
        "requests": ABANDONED_LOGINS,
        "cpu_ms_total": (cpu_after - cpu_before) * 1000.0,
        "cpu_ms_after_hang_up": (cpu_after - cpu_at_hang_up) * 1000.0,
        "peak_rss_mib": peak_rss_mib(pid),
    });
    eprintln!("  abandoned logins: {result}");
    Ok(result)
}

fn backend_run(backend: Backend, options: &Options, out: &Path) -> anyhow::Result<Vec<Value>> {
    let name = backend.name();
    eprintln!("\n==> bench on {name}");
    let dir = out.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let database = Database::fresh(&backend, &dir)?;
    let result = scenarios(&database, &dir, options);
    database.drop_database();
    result
}

fn scenarios(database: &Database, dir: &Path, options: &Options) -> anyhow::Result<Vec<Value>> {
    let backend = database.backend;
    let server = Server::start(database, dir)?;
    let (seconds, flood_seconds) = if options.quick { (1, 2) } else { (10, 60) };
    let (ann_id, token) = account(&server, "ann@example.com")?;
    account(&server, "bob@example.com")?;
    seed_small(database, ann_id)?;
    let bearer = format!("Authorization=Bearer {token}");
    let personal = personal_token(&server, &token)?;
    let post_id = database
        .execute("SELECT MAX(id) FROM posts;")?
        .trim()
        .parse::<i64>()
        .context("no post")?;

    let get = |path: &str, expected: u16, auth: bool| Load {
        method: "GET",
        path: path.to_owned(),
        expected,
        headers: if auth { vec![bearer.clone()] } else { vec![] },
        body: None,
        connections: CONNECTIONS,
        seconds,
    };
    let login = |connections: u32, seconds: u64| Load {
        method: "POST",
        path: "/login".into(),
        expected: 200,
        headers: vec!["Content-Type=application/x-www-form-urlencoded".into()],
        body: Some(login_form("bob@example.com")),
        connections,
        seconds,
    };
    let search = format!("/posts?search={SEARCH}");
    let common = format!("/posts?search={COMMON_SEARCH}");
    let mut results = vec![
        measure("GET /posts", database, &server, &[get("/posts", 200, true)])?,
        measure(
            &format!("GET /posts?search={SEARCH}"),
            database,
            &server,
            &[get(&search, 200, true)],
        )?,
        measure(
            &format!("GET /posts?search={COMMON_SEARCH}"),
            database,
            &server,
            &[get(&common, 200, true)],
        )?,
        measure(
            "GET /posts/{id}",
            database,
            &server,
            &[get(&format!("/posts/{post_id}"), 200, true)],
        )?,
        measure(
            "GET /users/me",
            database,
            &server,
            &[get("/users/me", 200, true)],
        )?,
        // What a personal access token's one lookup costs, beside the JWT's session check.
        measure(
            "GET /users/me with a personal access token",
            database,
            &server,
            &[Load {
                headers: vec![format!("Authorization=Bearer {personal}")],
                ..get("/users/me", 200, false)
            }],
        )?,
        measure(
            "GET /users/me without a token (401)",
            database,
            &server,
            &[get("/users/me", 401, false)],
        )?,
        measure(
            "POST /posts",
            database,
            &server,
            &[Load {
                method: "POST",
                path: "/posts".into(),
                expected: 201,
                headers: vec![bearer.clone(), "Content-Type=application/json".into()],
                body: Some(r#"{"title":"a post under load","content":"measured"}"#.into()),
                connections: CONNECTIONS,
                seconds,
            }],
        )?,
        measure(
            "POST /login",
            database,
            &server,
            &[login(CONNECTIONS, seconds)],
        )?,
    ];
    results.extend(flood(
        database,
        &server,
        &login(FLOOD_CONNECTIONS, flood_seconds),
        &token,
    )?);
    results.push(abandoned_logins(&server, "bob@example.com", backend)?);
    results.extend(failed_logins(database, dir, seconds)?);

    // The lists at 100 000 posts cost the database what they cost without the pooler.
    if !options.quick && backend != "pgbouncer" {
        eprintln!(
            "  seeding {BIG_POSTS} posts and {} votes",
            BIG_VOTERS * VOTES_PER_VOTER
        );
        let started = Instant::now();
        seed_big(database, ann_id)?;
        eprintln!("  seeded in {:.0?}", started.elapsed());
        results.push(measure(
            &format!("GET /posts at {BIG_POSTS} posts"),
            database,
            &server,
            &[get("/posts", 200, true)],
        )?);
        results.push(measure(
            &format!("GET /posts?search={SEARCH} at {BIG_POSTS} posts"),
            database,
            &server,
            &[get(&search, 200, true)],
        )?);
        results.push(measure(
            &format!("GET /posts?search={COMMON_SEARCH} at {BIG_POSTS} posts"),
            database,
            &server,
            &[get(&common, 200, true)],
        )?);
    }
    Ok(results)
}

/// Failed logins with throttling on, on a server of their own: what a brute-force attack costs
/// (with PostgreSQL, the budgets are counted in the database).
///
/// - Refused: wrong passwords for one username whose budget (5, the default) is spent, so
///   every attempt is a 429 before any hashing: one indexed read of the throttle.
/// - Counted: wrong passwords under limits too high to be reached, so every attempt is hashed,
///   looks the user up and counts its two keys.
fn failed_logins(database: &Database, dir: &Path, seconds: u64) -> anyhow::Result<Vec<Value>> {
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let wrong = login_form("bob@example.com").replace("correct", "wrong");
    let load = |expected| Load {
        method: "POST",
        path: "/login".into(),
        expected,
        headers: vec!["Content-Type=application/x-www-form-urlencoded".into()],
        body: Some(wrong.clone()),
        connections: CONNECTIONS,
        seconds,
    };
    let mut results = Vec::new();
    {
        let server = Server::start_with(
            database,
            dir,
            "warden-throttled",
            &[
                ("LOGIN_MAX_FAILURES_PER_USERNAME", "5"),
                ("LOGIN_MAX_FAILURES_PER_ADDRESS", "0"),
            ],
        )?;
        for _ in 0..5 {
            let (status, answer) = http(&server.addr, "POST", "/login", &form, &wrong)?;
            ensure!(
                status == 400,
                "a wrong password answered {status}: {answer}"
            );
        }
        results.push(measure(
            "POST /login, spent budget (429)",
            database,
            &server,
            &[load(429)],
        )?);
    }
    let server = Server::start_with(
        database,
        dir,
        "warden-counting",
        &[
            ("LOGIN_MAX_FAILURES_PER_USERNAME", "1000000000"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", "1000000000"),
        ],
    )?;
    results.push(measure(
        "POST /login, wrong password, counted (400)",
        database,
        &server,
        &[load(400)],
    )?);
    Ok(results)
}

/// The time `seconds` ago, as each database stores times.
fn ago(backend: &str, seconds: &str) -> String {
    if backend == "sqlite" {
        format!(
            "strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || ({seconds}) || ' seconds') || '+00:00'"
        )
    } else {
        format!("now() - ({seconds}) * interval '1 second'")
    }
}

/// A sequence of integers 1..=n as a row source named `s(n)`.
fn series(backend: &str, n: u32) -> String {
    if backend == "sqlite" {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             SELECT n FROM s) AS s"
        )
    } else {
        format!("generate_series(1, {n}) AS s(n)")
    }
}

/// Brings the vote counts kept with posts (if the schema keeps them) up to date after votes
/// were written directly.
fn recount_votes(database: &Database) -> anyhow::Result<()> {
    let has_column = if database.backend == "sqlite" {
        database.execute("SELECT COUNT(*) FROM pragma_table_info('posts') WHERE name = 'votes';")?
    } else {
        database.execute(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_name = 'posts' AND column_name = 'votes';",
        )?
    };
    if has_column.trim() == "1" {
        database.execute(
            "UPDATE posts SET votes = (SELECT COUNT(*) FROM votes v WHERE v.post_id = posts.id);",
        )?;
    }
    Ok(())
}

/// "Post N about wA and wB", with A and B spread over 5 000 words: a search for one word
/// matches about one post in 2 500, each of its trigrams a few hundred at 100 000 posts, as a
/// word in real titles would; a search for "about" matches every post.
fn title() -> &'static str {
    "'Post ' || s.n || ' about w' || ((CAST(s.n AS BIGINT) * 7919) % 5000) \
     || ' and w' || ((CAST(s.n AS BIGINT) * 104729) % 5000)"
}

/// 100 posts by Ann, newest last, half of them with her vote.
fn seed_small(database: &Database, ann: i64) -> anyhow::Result<()> {
    let backend = database.backend;
    let title = title();
    let created = ago(backend, "1000000 - s.n");
    let truth = if backend == "sqlite" { "1" } else { "TRUE" };
    database.execute(&format!(
        "INSERT INTO posts (owner_id, title, title_key, content, published, created_at, updated_at)
         SELECT {ann}, {title}, lower({title}), 'Seeded for the bench.', {truth}, {created}, {created}
         FROM {series};
         INSERT INTO votes (user_id, post_id, created_at)
         SELECT {ann}, id, {now} FROM posts WHERE id % 2 = 0;",
        series = series(backend, 100),
        now = ago(backend, "0"),
    ))?;
    recount_votes(database)
}

/// 100 000 posts (by Ann, older than the first 100) and 1 000 000 votes by 1 000 voters.
fn seed_big(database: &Database, ann: i64) -> anyhow::Result<()> {
    let backend = database.backend;
    let title = title();
    let created = ago(backend, "2000000 + s.n");
    let truth = if backend == "sqlite" { "1" } else { "TRUE" };
    let hash = database.execute(&format!(
        "SELECT password_hash FROM users WHERE id = {ann};"
    ))?;
    let hash = hash.trim();
    database.execute(&format!(
        "INSERT INTO users (email, email_key, password_hash, is_active, is_admin, created_at)
         SELECT 'voter' || s.n || '@example.com', 'voter' || s.n || '@example.com', '{hash}',
                {truth}, {falsity}, {now}
         FROM {voters};
         INSERT INTO posts (owner_id, title, title_key, content, published, created_at, updated_at)
         SELECT {ann}, {title}, lower({title}), 'Seeded for the bench.', {truth}, {created}, {created}
         FROM {posts};",
        falsity = if backend == "sqlite" { "0" } else { "FALSE" },
        now = ago(backend, "0"),
        voters = series(backend, BIG_VOTERS),
        posts = series(backend, BIG_POSTS),
    ))?;
    // Voter v votes on the posts first + (v + 100 k) mod BIG_POSTS for k < VOTES_PER_VOTER:
    // a thousand distinct posts each.
    let first_post = database
        .execute("SELECT MIN(id) FROM posts WHERE title LIKE 'Post % about %' AND id > 100;")?;
    let first_voter = database.execute("SELECT MIN(id) FROM users WHERE email LIKE 'voter%';")?;
    let (first_post, first_voter) = (first_post.trim(), first_voter.trim());
    let pairs = if backend == "sqlite" {
        format!(
            "(WITH RECURSIVE v(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM v WHERE n < {voters}),
                            k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < {per})
              SELECT v.n AS voter, k.n AS k FROM v, k)",
            voters = BIG_VOTERS - 1,
            per = VOTES_PER_VOTER - 1
        )
    } else {
        format!(
            "(SELECT v AS voter, k FROM generate_series(0, {}) v, generate_series(0, {}) k)",
            BIG_VOTERS - 1,
            VOTES_PER_VOTER - 1
        )
    };
    database.execute(&format!(
        "INSERT INTO votes (user_id, post_id, created_at)
         SELECT {first_voter} + p.voter, {first_post} + (p.voter + 100 * p.k) % {BIG_POSTS}, {now}
         FROM {pairs} AS p;",
        now = ago(backend, "0"),
    ))?;
    recount_votes(database)?;
    database.execute("ANALYZE;")?;
    Ok(())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    json!({ "cpu": cpu, "cores": cores })
}

fn number(value: &Value, key: &str, digits: usize) -> String {
    value[key]
        .as_f64()
        .map_or_else(|| "".to_owned(), |x| format!("{x:.digits$}"))
}

fn markdown(results: &[Value], machine: &Value, options: &Options) -> String {
    let mut table = format!(
        "Machine: {} ({} cores). {}\n\n\
         | scenario | db | req/s | p50 ms | p99 ms | server CPU ms/req | PostgreSQL CPU ms/req | peak RSS MiB |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        if options.quick {
            "Quick run: the harness was checked, the figures mean nothing."
        } else {
            "Ordinary scenarios: 10 s at 32 connections; the flood: 60 s at 64."
        }
    );
    for result in results {
        let mut scenario = result["scenario"].as_str().unwrap_or("?").to_owned();
        if let Some(p99) = result["beside_p99_ms"].as_f64() {
            let _ = write!(scenario, " (beside: p99 {p99:.1} ms)");
        }
        if let Some(after) = result["cpu_ms_after_hang_up"].as_f64() {
            let _ = write!(
                scenario,
                " ({} in all; {after:.0} ms CPU after the last hang-up, {:.0} ms in all)",
                result["requests"],
                result["cpu_ms_total"].as_f64().unwrap_or(0.0)
            );
        }
        let mut db_cpu = number(result, "db_cpu_ms_per_request", 3);
        if result.get("pooler_cpu_ms_per_request").is_some() {
            let _ = write!(
                db_cpu,
                " + {} (PgBouncer)",
                number(result, "pooler_cpu_ms_per_request", 3)
            );
        }
        let _ = writeln!(
            table,
            "| {scenario} | {} | {} | {} | {} | {} | {} | {} |",
            result["backend"].as_str().unwrap_or("?"),
            number(result, "rps", 0),
            number(result, "p50_ms", 2),
            number(result, "p99_ms", 2),
            number(result, "cpu_ms_per_request", 3),
            db_cpu,
            number(result, "peak_rss_mib", 0),
        );
    }
    table
}

/// Each figure of `results` divided by the same figure of the baseline run.
fn compare(results: &[Value], baseline: &Path) -> anyhow::Result<String> {
    let earlier: Value = serde_json::from_str(
        &std::fs::read_to_string(baseline)
            .with_context(|| format!("cannot read {}", baseline.display()))?,
    )?;
    let key = |result: &Value| {
        format!(
            "{} / {}",
            result["scenario"].as_str().unwrap_or(""),
            result["backend"].as_str().unwrap_or("")
        )
    };
    let earlier: BTreeMap<String, &Value> = earlier["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|result| (key(result), result))
        .collect();
    let mut out = format!(
        "Ratios to {} (now / then):\n\n| scenario | db | req/s | p99 | server CPU/req | PostgreSQL CPU/req | peak RSS |\n|---|---|---:|---:|---:|---:|---:|\n",
        baseline.display()
    );
    for result in results {
        let Some(then) = earlier.get(&key(result)) else {
            continue;
        };
        let ratio = |field: &str| match (result[field].as_f64(), then[field].as_f64()) {
            (Some(now), Some(then)) if then > 0.0 => format!("{:.2}", now / then),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            result["scenario"].as_str().unwrap_or(""),
            result["backend"].as_str().unwrap_or(""),
            ratio("rps"),
            ratio("p99_ms"),
            ratio("cpu_ms_per_request"),
            ratio("db_cpu_ms_per_request"),
            ratio("peak_rss_mib"),
        );
    }
    Ok(out)
}
