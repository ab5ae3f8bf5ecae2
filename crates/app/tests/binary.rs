//! Black-box tests of the `warden` binary: started as an operator would start it, spoken to over
//! TCP, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use warden_adapters::testing::TestDb;
use warden_app::testing::MailCatcher;

/// A running `warden` process.
struct Warden {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Warden {
    /// Starts `warden` in `dir` with only the given variables of Warden's own set.
    fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        // A free port: bind to port 0, read it, release it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
        command
            .current_dir(dir)
            .env_clear()
            .env("WARDEN_ADDR", addr.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("cannot start warden");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let warden = Self { child, addr, log };
        warden.wait_until_live();
        warden
    }

    fn wait_until_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(self.addr).is_ok()
                && self.request("GET", "/health/live", &[], "").0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("warden did not come up; its log:\n{}", self.log());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// One HTTP/1.1 request on its own connection: (status, raw head, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .write_all(head(method, path, headers, body.len()).as_bytes())
            .unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        read_response(&mut stream)
    }

    fn signal_term(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
    }

    fn terminate(&mut self) -> ExitStatus {
        self.signal_term();
        self.wait_for_exit()
    }

    fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "warden did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn head(method: &str, path: &str, headers: &[(&str, &str)], content_length: usize) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    // A reset connection reads as what arrived before it: possibly nothing, status 0.
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The walk of issue 2's "done when": register, log in, read your account, and be refused
/// without a token.
fn walk(warden: &Warden) {
    let (status, _, body) = warden.request(
        "POST",
        "/users",
        &[JSON],
        r#"{"email":"a@example.com","password":"correct horse"}"#,
    );
    assert_eq!(status, 201, "{body}");

    let (status, head, body) = warden.request(
        "POST",
        "/login",
        &[FORM],
        "username=a@example.com&password=correct horse",
    );
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let bearer = format!("Bearer {token}");
    let (status, _, body) = warden.request("GET", "/users/me", &[("authorization", &bearer)], "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["email"],
        "a@example.com"
    );

    let (status, head, _) = warden.request("GET", "/users/me", &[], "");
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
}

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

#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut warden = Warden::start(dir.path(), &[]);

    // Half a request is on the wire when SIGTERM arrives.
    let body = r#"{"email":"late@example.com","password":"correct horse"}"#;
    let mut stream = TcpStream::connect(warden.addr).unwrap();
    stream
        .write_all(head("POST", "/users", &[JSON], body.len()).as_bytes())
        .unwrap();
    stream.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    warden.signal_term();
    std::thread::sleep(Duration::from_millis(200));

    // It is still served, and only then does the process stop.
    stream.write_all(&body.as_bytes()[10..]).unwrap();
    let (status, _, response) = read_response(&mut stream);
    assert_eq!(status, 201, "{response}");
    let exit = warden.wait_for_exit();
    assert!(exit.success(), "{exit:?}");
    let log = warden.log();
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn after_sigterm_readiness_fails_while_requests_are_still_served_for_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mut warden = Warden::start(dir.path(), &[("SHUTDOWN_DELAY_SECONDS", "2")]);
    assert_eq!(warden.request("GET", "/health/ready", &[], "").0, 200);

    warden.signal_term();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let (status, head, body) = warden.request("GET", "/health/ready", &[], "");
    assert_eq!(status, 503, "{head}{body}");
    assert!(head.contains("retry-after"), "{head}");
    // Everything else is still served, on connections that then close.
    let body = r#"{"email":"late@example.com","password":"correct horse"}"#;
    let (status, head, _) = warden.request("POST", "/users", &[JSON], body);
    assert_eq!(status, 201);
    assert!(head.contains("connection: close"), "{head}");

    let exit = warden.wait_for_exit();
    assert!(exit.success(), "{exit:?}");
    let waited = signalled.elapsed();
    assert!(
        waited > Duration::from_millis(1200),
        "stopped {waited:?} after the check, before the 2 s delay was out"
    );
    let log = warden.log();
    assert!(log.contains("draining"), "{log}");
}

/// Runs `warden create-admin --email EMAIL` in `dir` with `stdin` piped in.
fn create_admin(dir: &Path, email: &str, stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .env_clear()
        .args(["create-admin", "--email", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn create_admin_reads_the_password_from_stdin_and_promotes_existing_accounts() {
    let dir = tempfile::tempdir().unwrap();

    let (ok, stdout, stderr) = create_admin(dir.path(), "root@example.com", "correct horse\n");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "created admin account 1");
    assert!(
        !stderr.contains("correct horse"),
        "the password reached the log"
    );
    let (ok, stdout, _) = create_admin(dir.path(), "ROOT@example.com", "");
    assert!(ok);
    assert_eq!(stdout.trim(), "account 1 is already an active admin");

    let mut warden = Warden::start(dir.path(), &[]);
    let (status, _, body) = warden.request(
        "POST",
        "/login",
        &[FORM],
        "username=root@example.com&password=correct horse",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["scope"],
        "profile posts:read posts:write admin tokens:introspect"
    );
    let (status, _, _) = warden.request(
        "POST",
        "/users",
        &[JSON],
        r#"{"email":"bob@example.com","password":"correct horse"}"#,
    );
    assert_eq!(status, 201);
    assert!(warden.terminate().success());

    let (ok, stdout, _) = create_admin(dir.path(), "bob@example.com", "");
    assert!(ok);
    assert_eq!(stdout.trim(), "made account 2 an active admin");

    let (ok, _, stderr) = create_admin(dir.path(), "not an email", "correct horse\n");
    assert!(!ok && stderr.contains("error"), "{stderr}");
    let (ok, _, stderr) = create_admin(dir.path(), "eve@example.com", "short\n");
    assert!(!ok && stderr.contains("at least 8 bytes"), "{stderr}");
}

#[test]
fn oversized_headers_tokens_and_silent_clients_cannot_stall_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::start(dir.path(), &[("HTTP_IDLE_TIMEOUT_SECONDS", "1")]);

    // A header far beyond what is buffered: refused (431, or the connection closed while it is
    // still being sent), not a crash.
    let huge = "x".repeat(600 * 1024);
    let mut stream = TcpStream::connect(warden.addr).unwrap();
    let sent = stream.write_all(head("GET", "/health/live", &[("x-filler", &huge)], 0).as_bytes());
    if sent.is_ok() {
        let (status, _, _) = read_response(&mut stream);
        assert!(matches!(status, 0 | 431), "{status}");
    }

    // A bearer token over the limit is just an invalid token.
    let bearer = format!("Bearer {}", "a".repeat(6000));
    let (status, head, _) = warden.request("GET", "/users/me", &[("authorization", &bearer)], "");
    assert_eq!(status, 401);
    assert!(head.contains(r#"error="invalid_token""#), "{head}");

    // A client that connects and says nothing is let go.
    let mut silent = TcpStream::connect(warden.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 1];
    let read = silent.read(&mut buffer);
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "held for {:?}",
        started.elapsed()
    );

    // And the server still answers.
    assert_eq!(warden.request("GET", "/health/live", &[], "").0, 200);
}

#[test]
fn help_never_prints_a_secret_from_the_environment_or_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "JWT_SECRET=a-dotenv-signing-key-of-more-than-32-bytes\n",
    )
    .unwrap();
    for help in ["--help", "-h"] {
        let output = Command::new(env!("CARGO_BIN_EXE_warden"))
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", "postgres://u:secret@h/db")
            .arg(help)
            .output()
            .unwrap();
        assert!(output.status.success());
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.contains("DATABASE_URL"), "{printed}");
        for leak in [
            "u:secret@",
            "secret@h",
            "postgres://u",
            "a-dotenv-signing-key",
        ] {
            assert!(
                !printed.contains(leak),
                "{help} printed {leak:?}:\n{printed}"
            );
        }
    }
}

/// Logins sent by clients that hang up at once: their requests are dropped with their
/// connections, so queued ones never reach the hasher, and the server spends nothing on them
/// once they are gone.
#[test]
fn logins_of_clients_that_hang_up_are_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::start(
        dir.path(),
        &[
            ("PASSWORD_HASH_CONCURRENCY", "1"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", "0"),
            ("LOGIN_MAX_FAILURES_PER_USERNAME", "0"),
        ],
    );
    let body = r#"{"email": "ann@example.com", "password": "correct horse"}"#;
    let json = [("content-type", "application/json")];
    assert_eq!(warden.request("POST", "/users", &json, body).0, 201);
    let form = "username=ann%40example.com&password=correct+horse";
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let request = format!("{}{form}", head("POST", "/login", &headers, form.len()));
    let abandoned: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut stream = TcpStream::connect(warden.addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    drop(abandoned);
    // Whatever was hashing when they left finishes; the rest never starts.
    std::thread::sleep(Duration::from_secs(1));
    let (status, _, _) = warden.request("POST", "/login", &headers, form);
    assert_eq!(status, 200);
    let served = warden.log().matches("login succeeded").count();
    assert!(
        served <= 6,
        "{served} logins of 31 were served although 30 clients had hung up"
    );
}

/// Clients that send half a request head and then nothing are closed after the header
/// timeout, while normal requests (from another address) go on being served.
#[test]
fn half_sent_requests_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::start(
        dir.path(),
        &[
            ("HTTP_HEADER_TIMEOUT_SECONDS", "1"),
            ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "200"),
        ],
    );
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream =
                connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), warden.addr).unwrap();
            stream
                .write_all(b"GET /health/live HTTP/1.1\r\nhost: loc")
                .unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    // Served throughout.
    assert_eq!(warden.request("GET", "/health/live", &[], "").0, 200);
    for stream in &mut slow {
        let mut buffer = [0u8; 256];
        // Closed: EOF, or a reset, or hyper's 408 and then EOF.
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "held for {took:?}");
    assert_eq!(warden.request("GET", "/health/live", &[], "").0, 200);
}

/// Past the connection limit, new connections wait until others close, and the log says so.
#[test]
fn connections_past_the_limit_wait_for_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::start(dir.path(), &[("HTTP_MAX_CONNECTIONS", "4")]);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(warden.addr).unwrap())
        .collect();
    // The fifth connects (the kernel's backlog takes it) but is not served...
    let mut waiting = TcpStream::connect(warden.addr).unwrap();
    waiting
        .write_all(head("GET", "/health/live", &[], 0).as_bytes())
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buffer = [0u8; 64];
    assert!(waiting.read(&mut buffer).is_err(), "served past the limit");
    assert!(
        warden.log().contains("connection limit reached"),
        "{}",
        warden.log()
    );
    // ...until one closes.
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (status, _, _) = read_response(&mut waiting);
    assert_eq!(status, 200);
}

/// A connection from `source`, another loopback address than the one the tests' own requests
/// come from (127.0.0.1), so that the server sees another client.
fn connect_from(source: std::net::Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let SocketAddr::V4(to) = to else {
        panic!("warden listens on IPv4 in these tests")
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

/// Raises this process's soft limit of open files (which `warden`, started after, inherits) to
/// at least `wanted`, as far as the hard limit allows.
fn allow_open_files(wanted: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).unwrap();
    }
}

/// How long `GET /health/live` takes to answer 200, from a client of its own; `None` if it
/// does not within `limit`.
fn live_within(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, limit).ok()?;
    stream.set_read_timeout(Some(limit)).unwrap();
    stream
        .write_all(head("GET", "/health/live", &[], 0).as_bytes())
        .ok()?;
    let mut buffer = [0u8; 12];
    stream.read_exact(&mut buffer).ok()?;
    let took = started.elapsed();
    (buffer.starts_with(b"HTTP/1.1 200") && took <= limit).then_some(took)
}

/// What became of a connection the server was expected to close: the status it answered
/// (0 for none), or `None` if it is still open.
fn closed_with(stream: &mut TcpStream) -> Option<u16> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => raw.extend_from_slice(&buffer[..read]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            // Reset: what arrived before it counts.
            Err(_) => break,
        }
    }
    let raw = String::from_utf8_lossy(&raw);
    Some(
        raw.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0),
    )
}

/// The red team's slow-body outage: one client opens 1,000 connections, each sending a
/// `POST /users` head with `Content-Length: 60000` and then one body byte at a time, often
/// enough that the connection is never idle. Health checks from another client go on being
/// answered within a second throughout (one client holds at most
/// `HTTP_MAX_CONNECTIONS_PER_ADDRESS` connections), and every slow request is answered 408 when
/// `HTTP_BODY_TIMEOUT_SECONDS` runs out, or was refused at once.
#[test]
fn a_thousand_slow_bodies_cannot_keep_health_checks_waiting() {
    const CLIENTS: usize = 1000;
    allow_open_files(4 * CLIENTS as u64);
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::start(dir.path(), &[("HTTP_BODY_TIMEOUT_SECONDS", "2")]);
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let request = head("POST", "/users", &[JSON], 60_000);
    let mut slow: Vec<TcpStream> = (0..CLIENTS)
        .filter_map(|_| {
            let mut stream = connect_from(attacker, warden.addr).ok()?;
            // Refused connections may fail here or later: they are kept all the same.
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.write_all(b"{");
            Some(stream)
        })
        .collect();
    assert_eq!(slow.len(), CLIENTS, "the kernel refused connections");

    // One byte on each connection every 250 ms, for 3 s: past the body timeout, never idle.
    let started = Instant::now();
    let mut waits = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        for stream in &mut slow {
            let _ = stream.write(b" ");
        }
        let wait = live_within(warden.addr, Duration::from_secs(1));
        assert!(
            wait.is_some(),
            "/health/live did not answer within 1 s, {:?} into the attack",
            started.elapsed()
        );
        waits.extend(wait);
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("health checks answered in {waits:?}");

    // Every slow request is over: answered 408, or refused (closed with no answer).
    let outcomes: Vec<Option<u16>> = slow.iter_mut().map(closed_with).collect();
    let open = outcomes.iter().filter(|outcome| outcome.is_none()).count();
    let timed_out = outcomes
        .iter()
        .filter(|&&outcome| outcome == Some(408))
        .count();
    assert_eq!(open, 0, "{open} slow requests still open after 3 s");
    assert!(
        timed_out > 0,
        "no slow request was answered 408: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|&outcome| matches!(outcome, Some(0 | 408))),
        "{outcomes:?}"
    );
    eprintln!("{timed_out} slow requests answered 408, the others refused");
    assert_eq!(warden.request("GET", "/health/live", &[], "").0, 200);
}

/// HTTP/2 with prior knowledge (h2c): 100 clients that send the preface and SETTINGS and then
/// only PINGs, on a server of 100 connections, cannot keep health checks waiting: Warden speaks
/// HTTP/1.1 only, so each is closed at once.
#[test]
fn h2c_clients_sending_only_pings_cannot_keep_health_checks_waiting() {
    const CLIENTS: usize = 100;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    // A PING: length 8, type 6, no flags, stream 0, then 8 bytes of payload.
    const PING: &[u8] = &[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    allow_open_files(4 * CLIENTS as u64);
    let dir = tempfile::tempdir().unwrap();
    let warden = Warden::start(dir.path(), &[("HTTP_MAX_CONNECTIONS", "100")]);
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut pinging: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream = connect_from(attacker, warden.addr).unwrap();
            let _ = stream.write_all(PREFACE);
            let _ = stream.write_all(SETTINGS);
            stream
        })
        .collect();

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        for stream in &mut pinging {
            let _ = stream.write(PING);
        }
        assert!(
            live_within(warden.addr, Duration::from_secs(1)).is_some(),
            "/health/live did not answer within 1 s, {:?} into the PINGs",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let open = pinging
        .iter_mut()
        .map(closed_with)
        .filter(Option::is_none)
        .count();
    assert_eq!(open, 0, "{open} h2c connections still open");
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

/// Runs `warden ARGS` in `dir` with only `env`, to its end: (success, stdout, stderr).
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `warden ARGS` as [`run`] does and expects it to fail saying `reason`: its stderr.
fn refused(dir: &Path, env: &[(&str, &str)], args: &[&str], reason: &str) -> String {
    let (ok, _, stderr) = run(dir, env, args);
    assert!(!ok, "warden {args:?} succeeded");
    assert!(stderr.contains(reason), "{stderr}");
    stderr
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

#[test]
fn check_config_says_what_is_wrong_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(dir.path(), &[], &["check-config"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("configuration ok"), "{stdout}");
    assert!(stdout.contains("will be created"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "check-config created files"
    );

    let stderr = refused(
        dir.path(),
        &[("JWT_SECRET", "too-short")],
        &["check-config"],
        "at least 32 bytes",
    );
    assert!(!stderr.contains("too-short"), "the secret was printed");

    let unreachable = [
        (
            "DATABASE_URL",
            "postgres://warden:hunter2@127.0.0.1:1/warden",
        ),
        ("JWT_SECRET", "a-check-config-secret-of-more-than-32-bytes"),
    ];
    let stderr = refused(
        dir.path(),
        &unreachable,
        &["check-config"],
        "cannot connect to PostgreSQL",
    );
    assert!(
        !stderr.contains("hunter2"),
        "the database password was printed"
    );

    refused(
        dir.path(),
        &[("CORS_ALLOWED_ORIGINS", "app.example.com")],
        &["check-config"],
        "is not an origin",
    );
}

#[test]
fn help_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, _) = run(dir.path(), &[], &["--help"]);
    assert!(ok);
    for example in [
        "warden migrate",
        "warden serve --no-migrate",
        "warden check-config",
    ] {
        assert!(stdout.contains(example), "{stdout}");
    }
}

#[test]
fn email_settings_that_cannot_work_refuse_to_start_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let serve = [("WARDEN_ADDR", "127.0.0.1:0")];
    let require = [serve[0], ("REQUIRE_VERIFIED_EMAIL", "true")];
    refused(
        dir.path(),
        &require,
        &[],
        "REQUIRE_VERIFIED_EMAIL=true needs SMTP_URL",
    );

    let no_sender = [
        serve[0],
        (
            "SMTP_URL",
            "smtps://warden:hunter22-secret@mail.example.com",
        ),
    ];
    let stderr = refused(dir.path(), &no_sender, &[], "MAIL_FROM");
    assert!(
        !stderr.contains("hunter22"),
        "the SMTP password reached the log"
    );

    let from = ("MAIL_FROM", "Warden <no-reply@example.com>");
    let root_without_url = [serve[0], ("SMTP_ROOT_CERT", "/etc/hostname")];
    refused(
        dir.path(),
        &root_without_url,
        &[],
        "SMTP_ROOT_CERT is set but SMTP_URL is not",
    );
    let missing_root = [
        no_sender[1],
        from,
        ("SMTP_ROOT_CERT", "/nonexistent/ca.pem"),
    ];
    let stderr = refused(
        dir.path(),
        &missing_root,
        &["check-config"],
        "cannot read SMTP_ROOT_CERT /nonexistent/ca.pem",
    );
    assert!(!stderr.contains("hunter22"), "{stderr}");
}

/// `check-config` reaches the mail server, and reports one it cannot reach without refusing:
/// `serve` would start, and mail would wait in the outbox.
#[tokio::test(flavor = "multi_thread")]
async fn check_config_says_whether_the_mail_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let catcher = MailCatcher::start().await;
    let from = ("MAIL_FROM", "Warden <no-reply@example.com>");
    let (ok, stdout, stderr) = run(
        dir.path(),
        &[("SMTP_URL", &catcher.url()), from],
        &["check-config"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("email: on; the mail server (SMTP_URL) answered"),
        "{stdout}"
    );

    // The discard port, where nobody listens.
    let down = ("SMTP_URL", "smtp://warden:hunter22-secret@127.0.0.1:9");
    let (ok, stdout, stderr) = run(dir.path(), &[down, from], &["check-config"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("the mail server (SMTP_URL) cannot be reached now"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter22") && !stderr.contains("hunter22"));
}
