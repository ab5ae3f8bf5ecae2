//! Email (contract section 12): the one-time tokens that mails carry, the mails themselves, and
//! the outbox's retry policy.
//!
//! A mail is never sent by the request that causes it: the request stores it in the outbox, in
//! the transaction of the change that causes it, and a background worker sends it. A token is
//! stored only as its hash; the mail carrying it holds it in the outbox until it is sent.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    accounts::{EmailAddress, UserId},
    crypto::SecretHash,
};

/// What an emailed token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailTokenPurpose {
    /// Set a new password without the old one.
    PasswordReset,
    /// Prove that the account's address receives mail.
    EmailVerification,
    /// Move the account to the address the token was sent to.
    EmailChange,
}

impl EmailTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
            Self::EmailChange => "email_change",
        }
    }

    /// The purpose a stored name stands for.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::PasswordReset,
            Self::EmailVerification,
            Self::EmailChange,
        ]
        .into_iter()
        .find(|purpose| purpose.as_str() == raw)
    }
}

/// An emailed token to store: only its hash, what it is for, and the address it concerns (the
/// account's address for a reset or a verification, the new one for a change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmailToken {
    pub purpose: EmailTokenPurpose,
    pub hash: SecretHash,
    pub email: EmailAddress,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A stored emailed token, as found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    pub user_id: UserId,
    pub purpose: EmailTokenPurpose,
    pub email: EmailAddress,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

impl EmailToken {
    /// Whether it may still be spent at `now` for `purpose`.
    pub fn is_live_for(&self, purpose: EmailTokenPurpose, now: DateTime<Utc>) -> bool {
        self.purpose == purpose && !self.used && now < self.expires_at
    }
}

/// A token as its mail carries it. It never prints: `Debug` shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct MailToken(String);

impl MailToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MailToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailToken(..)")
    }
}

/// Which message a mail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A password reset token, to the account's address.
    PasswordReset,
    /// An email verification token, to the account's address.
    EmailVerification,
    /// An email change token, to the new address.
    EmailChange,
    /// A notice to the old address that a change to another was asked for; no token.
    EmailChangeNotice,
}

impl MailKind {
    pub const ALL: [Self; 4] = [
        Self::PasswordReset,
        Self::EmailVerification,
        Self::EmailChange,
        Self::EmailChangeNotice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
            Self::EmailChange => "email_change",
            Self::EmailChangeNotice => "email_change_notice",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

/// A mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub kind: MailKind,
    pub to: EmailAddress,
    /// The token it carries; `None` for a notice.
    pub token: Option<MailToken>,
}

/// A mail's id in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailId(i64);

impl MailId {
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for MailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A mail taken from the outbox to be sent: no other worker takes it until its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: MailId,
    pub mail: OutgoingMail,
    /// How many times it has been taken, this time included.
    pub attempts: u32,
}

/// How the outbox retries: after the `n`-th failed attempt it waits `first_delay * 2^(n-1)`
/// (at most [`MailRetry::MAX_DELAY`]), and after `max_attempts` it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailRetry {
    pub max_attempts: u32,
    pub first_delay: TimeDelta,
}

impl MailRetry {
    /// The longest wait between two attempts.
    pub const MAX_DELAY: TimeDelta = TimeDelta::hours(1);

    /// How long to wait after the `attempts`-th failure, or `None` to give up.
    pub fn delay_after(self, attempts: u32) -> Option<TimeDelta> {
        if attempts >= self.max_attempts {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self
            .first_delay
            .checked_mul(1 << doublings)
            .unwrap_or(Self::MAX_DELAY);
        Some(delay.min(Self::MAX_DELAY))
    }
}

/// How long emailed tokens live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailTokenLifetimes {
    /// `PASSWORD_RESET_EXPIRE_MINUTES` (contract: default 30 minutes).
    pub password_reset: TimeDelta,
    /// Verification and email change tokens (contract: 24 hours).
    pub verification: TimeDelta,
}

impl Default for EmailTokenLifetimes {
    fn default() -> Self {
        Self {
            password_reset: TimeDelta::minutes(30),
            verification: TimeDelta::hours(24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_an_hour_then_give_up() {
        let retry = MailRetry {
            max_attempts: 20,
            first_delay: TimeDelta::seconds(10),
        };
        assert_eq!(retry.delay_after(1), Some(TimeDelta::seconds(10)));
        assert_eq!(retry.delay_after(2), Some(TimeDelta::seconds(20)));
        assert_eq!(retry.delay_after(4), Some(TimeDelta::seconds(80)));
        assert_eq!(retry.delay_after(19), Some(MailRetry::MAX_DELAY));
        assert_eq!(retry.delay_after(20), None);
        assert_eq!(retry.delay_after(u32::MAX), None);
    }

    #[test]
    fn tokens_never_print_and_names_round_trip() {
        let token = MailToken::new("s3cr3t-token".to_owned());
        assert!(!format!("{token:?}").contains("s3cr3t"));
        for kind in MailKind::ALL {
            assert_eq!(MailKind::parse(kind.as_str()), Some(kind));
        }
        for purpose in [
            EmailTokenPurpose::PasswordReset,
            EmailTokenPurpose::EmailVerification,
            EmailTokenPurpose::EmailChange,
        ] {
            assert_eq!(EmailTokenPurpose::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(MailKind::parse("other"), None);
    }
}
