//! The connection layer under hostile clients: oversized heads, silent and slow clients, hang-ups,
//! h2c, and the connection caps.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::*;

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
