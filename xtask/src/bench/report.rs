//! The results as `target/bench/results.md` shows them, the machine they ran on, and their
//! ratios to an earlier `results.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::Options;

pub(super) fn machine() -> Value {
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

pub(super) fn markdown(results: &[Value], machine: &Value, options: &Options) -> String {
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
pub(super) fn compare(results: &[Value], baseline: &Path) -> anyhow::Result<String> {
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
