//! Starting `warden` as an operator would: with no configuration, on PostgreSQL, with bad
//! secrets, with or without migrating, and its metrics listener.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_adapters::testing::TestDb;

use crate::support::*;

#[test]
fn with_no_configuration_warden_serves_from_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut warden = Warden::start(dir.path(), &[]);

    walk(&warden);

    assert!(dir.path().join("warden.db").exists());
    let secret = dir.path().join("warden.db.jwt-secret");
    // The database (password hashes and all), its WAL and shared-memory files, and the secret:
    // readable by their owner only, whatever the umask.
    #[cfg(unix)]
    for file in [
        "warden.db",
        "warden.db-wal",
        "warden.db-shm",
        "warden.db.jwt-secret",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap_or_else(|err| panic!("{file}: {err}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is {:o}", mode & 0o777);
    }
    let secret = std::fs::read_to_string(secret).unwrap();
    let log = warden.log();
    assert!(log.contains("generated a JWT signing secret"), "{log}");
    assert!(!log.contains(&secret), "the secret reached the log");
    assert!(!log.contains("correct horse"), "a password reached the log");
    // Each security event is one log line too (contract section 11): the walk's login.
    let event = log
        .lines()
        .find(|line| line.contains("security event"))
        .unwrap_or_else(|| panic!("no security event in the log:\n{log}"));
    assert!(event.contains("event=\"login\""), "{event}");
    assert!(event.contains("user_id=1"), "{event}");
    assert!(event.contains("session_id="), "{event}");
    // Written to a pipe, the log is plain text, and it names a URL a person can open.
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log:\n{log}"
    );
    assert!(
        log.contains(&format!("http://{}/docs", warden.addr)),
        "{log}"
    );

    assert!(warden.terminate().success());
}

#[test]
fn tokens_survive_a_restart_on_the_same_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut warden = Warden::start(dir.path(), &[]);
    walk(&warden);
    let (_, _, body) = warden.request(
        "POST",
        "/login",
        &[FORM],
        "username=a@example.com&password=correct+horse",
    );
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(warden.terminate().success());

    let warden = Warden::start(dir.path(), &[]);
    let bearer = format!("Bearer {token}");
    let (status, _, body) = warden.request("GET", "/users/me", &[("authorization", &bearer)], "");
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_walk_works_on_postgresql() {
    let db = TestDb::postgres().await;
    let url = db.url().to_owned();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mut warden = Warden::start(
            dir.path(),
            &[
                ("DATABASE_URL", &url),
                ("JWT_SECRET", "a-postgres-test-secret-of-32-bytes-or-more"),
            ],
        );
        walk(&warden);
        assert!(warden.terminate().success());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_without_a_jwt_secret_refuses_to_start() {
    let db = TestDb::postgres().await;
    let url = db.url().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .env_clear()
            .env("DATABASE_URL", url)
            .env("WARDEN_ADDR", "127.0.0.1:0")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET is required"), "{stderr}");
}

#[test]
fn a_short_jwt_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir.path())
        .env_clear()
        .env("JWT_SECRET", "too-short")
        .env("WARDEN_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(!stderr.contains("too-short"), "the secret reached the log");
}

#[test]
fn only_the_working_directorys_env_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // A parent directory's .env would make it refuse to start.
    std::fs::write(dir.path().join(".env"), "JWT_SECRET=too-short\n").unwrap();
    let warden = Warden::start(&work, &[]);
    assert_eq!(warden.request("GET", "/health/live", &[], "").0, 200);
    drop(warden);
    // Its own is read.
    std::fs::write(work.join(".env"), "JWT_SECRET=too-short\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(&work)
        .env_clear()
        .env("WARDEN_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 32 bytes"));
}

/// With METRICS_ADDR, `/metrics` is there and only there, and `promtool` (Prometheus's own
/// checker) accepts what it serves.
#[test]
fn metrics_are_served_on_their_own_address_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let warden = Warden::start(dir.path(), &[("METRICS_ADDR", &metrics_addr.to_string())]);
    let json = [("content-type", "application/json")];
    let body = r#"{"email": "ann@example.com", "password": "correct horse"}"#;
    assert_eq!(warden.request("POST", "/users", &json, body).0, 201);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let login = "username=ann%40example.com&password=correct+horse";
    assert_eq!(warden.request("POST", "/login", &form, login).0, 200);
    assert_eq!(warden.request("GET", "/metrics", &[], "").0, 404);

    let mut stream = TcpStream::connect(metrics_addr).unwrap();
    stream
        .write_all(head("GET", "/metrics", &[], 0).as_bytes())
        .unwrap();
    let (status, _, metrics) = read_response(&mut stream);
    assert_eq!(status, 200);
    assert!(metrics.contains("warden_logins_total"), "{metrics}");

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut promtool) = promtool else {
        panic!("promtool is not installed: `apt-get install prometheus` (.ci/run does)");
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_no_migrate_refuses_a_schema_that_is_behind_and_migrate_brings_it_up() {
    let dir = tempfile::tempdir().unwrap();
    // An empty database file: no migration applied.
    std::fs::File::create(dir.path().join("warden.db")).unwrap();
    let env = [("WARDEN_ADDR", "127.0.0.1:0")];
    let stderr = refused(
        dir.path(),
        &env,
        &["serve", "--no-migrate"],
        "20261121000001_users_and_sessions",
    );
    assert!(stderr.contains("warden migrate"), "{stderr}");

    let (ok, stdout, stderr) = run(dir.path(), &env, &["migrate"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("applied 20261121000001_users_and_sessions"),
        "{stdout}"
    );
    let (ok, stdout, _) = run(dir.path(), &env, &["migrate"]);
    assert!(ok);
    assert!(stdout.contains("up to date"), "{stdout}");

    let warden = Warden::start(dir.path(), &[]);
    assert_eq!(warden.request("GET", "/health/ready", &[], "").0, 200);
}

#[test]
fn serve_no_migrate_starts_on_an_up_to_date_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(dir.path(), &[], &["migrate"]);
    assert!(ok, "{stderr}");
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir.path())
        .env_clear()
        .env("WARDEN_ADDR", addr.to_string())
        .args(["serve", "--no-migrate"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "warden serve --no-migrate did not start"
        );
        assert!(child.try_wait().unwrap().is_none(), "it exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
