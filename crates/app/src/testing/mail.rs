//! [`MailCatcher`]: a real SMTP server on loopback (aiosmtpd, from the pinned Python tools) that
//! keeps what it receives in a maildir, for tests to read the mail Warden delivers.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python with aiosmtpd: `WARDEN_TEST_PYTHON`, which `cargo xtask ci` sets.
fn python() -> PathBuf {
    std::env::var_os("WARDEN_TEST_PYTHON").map_or_else(
        || {
            panic!(
                "the email tests need a real SMTP server, aiosmtpd: run them with `cargo xtask \
                 ci`, which installs it, or set WARDEN_TEST_PYTHON to a Python that has \
                 aiosmtpd (target/xtask-venv/bin/python once xtask has made it)"
            )
        },
        PathBuf::from,
    )
}

/// An SMTP server on a loopback port, storing every mail in a maildir. Stopped when dropped.
#[derive(Debug)]
pub struct MailCatcher {
    child: Option<Child>,
    maildir: tempfile::TempDir,
    port: u16,
}

/// A delivered mail, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope recipient.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The token the mail carries: the text part's line that is a whole token (43 base64url
    /// characters).
    ///
    /// # Panics
    ///
    /// If there is none, or the HTML part does not carry the same.
    pub fn token(&self) -> String {
        let token = self
            .text
            .lines()
            .map(str::trim)
            .find(|line| {
                line.len() == 43
                    && line
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
            })
            .unwrap_or_else(|| panic!("no token in the mail: {}", self.text))
            .to_owned();
        assert!(
            self.html.contains(&token),
            "the HTML part lacks the token: {}",
            self.html
        );
        token
    }
}

impl MailCatcher {
    /// A server on a free port.
    ///
    /// # Panics
    ///
    /// If no port is free or the server does not start (see [`MailCatcher::start_on`]).
    pub async fn start() -> Self {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        Self::start_on(port).await
    }

    /// A server on `port`, once it accepts connections.
    ///
    /// # Panics
    ///
    /// If `WARDEN_TEST_PYTHON` is unset, or the server does not listen within 20 seconds.
    pub async fn start_on(port: u16) -> Self {
        let maildir = tempfile::tempdir().expect("a temporary directory");
        let mut catcher = Self {
            child: None,
            maildir,
            port,
        };
        catcher.restart().await;
        catcher
    }

    /// Starts the server again after [`MailCatcher::stop`], on the same port and maildir.
    ///
    /// # Panics
    ///
    /// As [`MailCatcher::start_on`].
    pub async fn restart(&mut self) {
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir.path().join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot run aiosmtpd with WARDEN_TEST_PYTHON");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: the port refuses connections until [`MailCatcher::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SMTP_URL` for Warden: plain SMTP on loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail delivered so far, oldest first.
    ///
    /// # Panics
    ///
    /// If a stored mail cannot be read or parsed.
    pub fn mails(&self) -> Vec<Mail> {
        let new = self.maildir.path().join("mail/new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .map(|entry| {
                let path = entry.expect("a maildir entry").path();
                let modified = std::fs::metadata(&path)
                    .and_then(|meta| meta.modified())
                    .expect("a mail's time");
                (modified, path)
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| parse(&std::fs::read(path).expect("a stored mail")))
            .collect()
    }

    /// The mails delivered to `to`, once there are `count`; waits up to 30 seconds.
    ///
    /// # Panics
    ///
    /// If fewer arrive in time.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mails: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|mail| mail.to.eq_ignore_ascii_case(to))
                .collect();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mail(s) to {to} arrived in 30 s; all: {:?}",
                mails.len(),
                self.mails()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for MailCatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(raw: &[u8]) -> Mail {
    let parsed = mailparse::parse_mail(raw).expect("a well-formed mail");
    let header = |name: &str| {
        mailparse::MailHeaderMap::get_first_value(parsed.headers.as_slice(), name)
            .unwrap_or_default()
    };
    let part = |mime: &str| {
        parsed
            .subparts
            .iter()
            .find(|part| part.ctype.mimetype == mime)
            .and_then(|part| part.get_body().ok())
            .unwrap_or_default()
    };
    Mail {
        to: header("X-RcptTo"),
        subject: header("Subject"),
        text: part("text/plain"),
        html: part("text/html"),
    }
}
