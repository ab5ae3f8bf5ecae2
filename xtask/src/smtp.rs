//! A real mail server for the checks: aiosmtpd from the xtask venv on a loopback port,
//! storing what it receives in a maildir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};

use crate::net;

/// How the mail server listens.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Listener {
    Smtps,
    StartTls,
    Plain,
}

/// An aiosmtpd that stores what it receives in a maildir; stopped on drop.
pub(crate) struct MailServer {
    child: Child,
    pub(crate) port: u16,
    maildir: PathBuf,
}

impl MailServer {
    /// Starts one listening as `listener` says, once it accepts connections. Its maildir is
    /// `dir/mail-<listener>`; a TLS listener uses `dir/server.crt` and `dir/server.key`.
    pub(crate) fn start(python: &Path, dir: &Path, listener: Listener) -> anyhow::Result<Self> {
        let port = net::free_port()?;
        let maildir = dir.join(format!("mail-{listener:?}"));
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        let mut command = Command::new(python);
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"]);
        match listener {
            Listener::Smtps => {
                command
                    .arg("--smtpscert")
                    .arg(&cert)
                    .arg("--smtpskey")
                    .arg(&key);
            }
            // Refuses mail until the client has said STARTTLS.
            Listener::StartTls => {
                command
                    .arg("--tlscert")
                    .arg(&cert)
                    .arg("--tlskey")
                    .arg(&key);
            }
            Listener::Plain => {}
        }
        let child = command
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot run aiosmtpd from the xtask venv")?;
        let server = Self {
            child,
            port,
            maildir,
        };
        ensure!(
            net::listening_within(port, Duration::from_secs(20)),
            "aiosmtpd ({listener:?}) did not listen"
        );
        Ok(server)
    }

    /// The raw mails delivered so far.
    pub(crate) fn mails(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|entries| {
                entries
                    .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
