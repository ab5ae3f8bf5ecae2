//! What the black-box tests share: a running `warden` process, raw HTTP over TCP, and running
//! one-shot commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// A running `warden` process.
pub(crate) struct Warden {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) log: Arc<Mutex<String>>,
}

impl Warden {
    /// Starts `warden` in `dir` with only the given variables of Warden's own set.
    pub(crate) fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
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

    pub(crate) fn wait_until_live(&self) {
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

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// One HTTP/1.1 request on its own connection: (status, raw head, body).
    pub(crate) fn request(
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

    pub(crate) fn signal_term(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
    }

    pub(crate) fn terminate(&mut self) -> ExitStatus {
        self.signal_term();
        self.wait_for_exit()
    }

    pub(crate) fn wait_for_exit(&mut self) -> ExitStatus {
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

pub(crate) fn head(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    content_length: usize,
) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

pub(crate) fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
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

pub(crate) const JSON: (&str, &str) = ("content-type", "application/json");
pub(crate) const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The walk of issue 2's "done when": register, log in, read your account, and be refused
/// without a token.
pub(crate) fn walk(warden: &Warden) {
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

/// Runs `warden ARGS` in `dir` with only `env`, to its end: (success, stdout, stderr).
pub(crate) fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
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
pub(crate) fn refused(dir: &Path, env: &[(&str, &str)], args: &[&str], reason: &str) -> String {
    let (ok, _, stderr) = run(dir, env, args);
    assert!(!ok, "warden {args:?} succeeded");
    assert!(stderr.contains(reason), "{stderr}");
    stderr
}
