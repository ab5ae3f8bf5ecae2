//! One measured scenario: wrk's loads and what they report, and the process accounting around
//! them (CPU time of the server, of PostgreSQL's backends and of PgBouncer, and peak RSS, from
//! `/proc`).

use std::process::{Child, Command, Stdio};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::Server;
use super::database::Database;
use crate::postgres::psql;
use crate::root;

/// One request, repeated by wrk.
pub(super) struct Load<'a> {
    pub(super) method: &'a str,
    pub(super) path: String,
    pub(super) expected: u16,
    pub(super) headers: Vec<String>,
    pub(super) body: Option<String>,
    pub(super) connections: u32,
    pub(super) seconds: u64,
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
pub(super) fn measure(
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

/// CPU time (user + system) of process `pid`.
pub(super) fn cpu_seconds(pid: u32) -> f64 {
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
pub(super) fn peak_rss_mib(pid: u32) -> f64 {
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

pub(super) fn reset_peak_rss(pid: u32) {
    // Writing 5 resets VmHWM to the current RSS (Linux 4.0 and later).
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}
