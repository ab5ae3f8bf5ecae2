//! The interactive user beside a load: `GET` at a fixed rate on one keep-alive connection, its
//! latencies and their percentiles.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::ensure;

use super::PROBES_PER_SECOND;

/// `GET path` at a fixed rate on one keep-alive connection for `seconds`, as a person using
/// the API does (wrk's closed loop would be a load of its own): every latency, sorted.
pub(super) fn probe(
    addr: &str,
    path: &str,
    bearer: &str,
    seconds: u64,
) -> anyhow::Result<Vec<f64>> {
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

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
