//! Settings of email (contract section 12): the mail server, the outbox's retries, token
//! lifetimes, the verification requirement and the request budgets.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::TimeDelta;
use clap::Args;
use secrecy::SecretString;
use warden_adapters::{SmtpConfig, SmtpMailer};
use warden_domain::mail::{EmailTokenLifetimes, MailRetry};

use super::{Config, secret};

/// Email: off unless `SMTP_URL` is set.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Email")]
pub struct MailConfig {
    /// The mail server: `smtps://user:password@host:465` (TLS), `smtp://...:587?tls=required`
    /// (STARTTLS required), `smtp://...?tls=opportunistic`, or plain `smtp://localhost:1025`
    /// for a local catcher. Unset, email is off: password reset, verification and confirmed
    /// email changes answer 501.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, value_parser = secret)]
    pub smtp_url: Option<SecretString>,

    /// A PEM file of the certificates to trust for the mail server's TLS, instead of the
    /// system's roots: for a relay whose certificate a private authority signed. Needs TLS in
    /// `SMTP_URL`.
    #[arg(long, env = "SMTP_ROOT_CERT")]
    pub smtp_root_cert: Option<PathBuf>,

    /// The sender of every mail: `Warden <no-reply@example.com>` or a bare address. Required
    /// with `SMTP_URL`.
    #[arg(long, env = "MAIL_FROM")]
    pub mail_from: Option<String>,

    /// How long each exchange with the mail server may take, in seconds.
    #[arg(long, env = "SMTP_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub smtp_timeout_seconds: u64,

    /// How many times a mail is tried before it is given up (logged and counted in
    /// `warden_mail_failed_total`).
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub mail_max_attempts: u32,

    /// The wait after a mail's first failed attempt, in seconds; it doubles with each further
    /// failure, up to an hour.
    #[arg(long, env = "MAIL_RETRY_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub mail_retry_seconds: u32,

    /// How long a password reset token is valid, in minutes.
    #[arg(long, env = "PASSWORD_RESET_EXPIRE_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub password_reset_expire_minutes: u32,

    /// Refuse password logins of accounts whose address is not verified (400 `invalid_grant`,
    /// "email address not verified"). Needs `SMTP_URL`.
    #[arg(long, env = "REQUIRE_VERIFIED_EMAIL", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub require_verified_email: bool,

    /// Password reset and verification requests allowed per client address over
    /// `MAIL_REQUEST_WINDOW_SECONDS`. 0 turns it off.
    #[arg(long, env = "MAIL_REQUESTS_PER_ADDRESS", default_value_t = 10)]
    pub mail_requests_per_address: u32,

    /// Password reset and verification requests allowed per email address (whether or not an
    /// account has it) over `MAIL_REQUEST_WINDOW_SECONDS`. 0 turns it off.
    #[arg(long, env = "MAIL_REQUESTS_PER_EMAIL", default_value_t = 3)]
    pub mail_requests_per_email: u32,

    /// The window over which mail requests are counted, in seconds.
    #[arg(long, env = "MAIL_REQUEST_WINDOW_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub mail_request_window_seconds: u64,
}

impl MailConfig {
    /// The outbox's retry policy.
    pub fn retry(&self) -> MailRetry {
        MailRetry {
            max_attempts: self.mail_max_attempts,
            first_delay: TimeDelta::seconds(self.mail_retry_seconds.into()),
        }
    }

    pub fn lifetimes(&self) -> EmailTokenLifetimes {
        EmailTokenLifetimes {
            password_reset: TimeDelta::minutes(self.password_reset_expire_minutes.into()),
            ..EmailTokenLifetimes::default()
        }
    }
}

impl Config {
    /// The mailer the settings ask for, or `None` when email is off.
    ///
    /// # Errors
    ///
    /// A setting needs `SMTP_URL` and it is unset, `MAIL_FROM` is missing or malformed, the
    /// URL is malformed, or `SMTP_ROOT_CERT` cannot be read or used.
    pub fn mailer(&self) -> anyhow::Result<Option<SmtpMailer>> {
        let (config, mail) = (self, &self.mail);
        let Some(url) = &mail.smtp_url else {
            if mail.smtp_root_cert.is_some() {
                bail!("SMTP_ROOT_CERT is set but SMTP_URL is not");
            }
            if mail.require_verified_email {
                bail!(
                    "REQUIRE_VERIFIED_EMAIL=true needs SMTP_URL: without mail, no address could ever \
                 be verified and nobody could log in"
                );
            }
            return Ok(None);
        };
        let Some(from) = &mail.mail_from else {
            bail!(
                "SMTP_URL is set but MAIL_FROM is not: set the sender, like `Warden <no-reply@example.com>`"
            );
        };
        let root_certificates = match &mail.smtp_root_cert {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read SMTP_ROOT_CERT {}", path.display()))?,
            ),
            None => None,
        };
        let mailer = SmtpMailer::new(SmtpConfig {
            url: url.clone(),
            root_certificates,
            from: from.clone(),
            public_url: config.server.public_url.clone(),
            timeout: Duration::from_secs(mail.smtp_timeout_seconds),
            lifetimes: mail.lifetimes(),
        })?;
        Ok(Some(mailer))
    }
}
