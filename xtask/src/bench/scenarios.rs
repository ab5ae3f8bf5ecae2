//! The scenarios of one database: reads, writes and logins under wrk, the login flood with a
//! probe beside it, abandoned logins, failed logins with throttling on, and the lists at
//! 100 000 posts.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::database::Database;
use super::measure::{Load, cpu_seconds, measure, peak_rss_mib, reset_peak_rss};
use super::probe::{percentile, probe};
use super::seed::{account, login_form, personal_token, seed_big, seed_small};
use super::{
    ABANDON_AFTER, ABANDONED_LOGINS, BIG_POSTS, BIG_VOTERS, COMMON_SEARCH, CONNECTIONS,
    FLOOD_CONNECTIONS, Options, PROBES_PER_SECOND, SEARCH, Server, VOTES_PER_VOTER,
};
use crate::net::http;

pub(super) fn run(
    database: &Database,
    dir: &Path,
    options: &Options,
) -> anyhow::Result<Vec<Value>> {
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
