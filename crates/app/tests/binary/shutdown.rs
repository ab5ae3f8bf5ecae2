//! Stopping `warden` with SIGTERM: requests in flight finish, readiness fails first.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

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
