//! Users and the validated values they are made of.

use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::text::{self, ForbiddenCharacter, TextKind};

/// A user's id: a positive 64-bit integer assigned by the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(i64);

impl UserId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest address SMTP can carry (RFC 5321 section 4.5.3.1.3, as corrected by erratum 1690).
const EMAIL_MAX_LEN: usize = 254;

/// A syntactically valid email address, trimmed of surrounding white space.
///
/// It keeps the spelling the user gave, but two addresses that differ only in case are the same
/// account: equality and hashing use [`EmailAddress::normalized`], and so do the repositories'
/// unique keys.
#[derive(Debug, Clone)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{raw:?} is not a valid email address: {reason}")]
pub struct EmailAddressError {
    pub raw: String,
    pub reason: String,
}

impl EmailAddress {
    pub fn new(raw: &str) -> Result<Self, EmailAddressError> {
        let trimmed = raw.trim();
        let invalid = |reason: String| EmailAddressError {
            raw: raw.to_owned(),
            reason,
        };
        if trimmed.len() > EMAIL_MAX_LEN {
            return Err(invalid(format!("longer than {EMAIL_MAX_LEN} bytes")));
        }
        text::check(trimmed, TextKind::Line).map_err(|err| invalid(err.to_string()))?;
        // Display names ("Ann <ann@example.com>") and IP literals are valid RFC 5322 but never what
        // someone means when registering an account, so they are refused.
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal();
        email_address::EmailAddress::parse_with_options(trimmed, options)
            .map_err(|e| invalid(e.to_string().to_lowercase()))?;
        // A quoted local part ("ann smith"@example.com) is valid RFC 5322 too, but mail
        // software (Warden's own SMTP client among it) cannot be relied on to deliver to it: an
        // account at such an address could never get its reset or verification mail.
        if trimmed.starts_with('"') {
            return Err(invalid("a quoted local part cannot be mailed".into()));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used to compare addresses and as the unique key in storage.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for EmailAddress {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

impl Eq for EmailAddress {}

impl Hash for EmailAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized().hash(state);
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bounds on a password's length in bytes. The upper bound keeps a hash of a huge input from
/// being a cheap denial of service.
pub const PASSWORD_MIN_BYTES: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// A plaintext password. It never prints (its `Debug` is redacted) and its memory is zeroed on
/// drop.
#[derive(Clone)]
pub struct Password(SecretString);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {PASSWORD_MIN_BYTES} bytes long")]
    TooShort,
    #[error("password must be at most {PASSWORD_MAX_BYTES} bytes long")]
    TooLong,
    #[error("password {0}")]
    Forbidden(#[from] ForbiddenCharacter),
}

impl Password {
    /// A password chosen now, held to today's policy.
    pub fn new(raw: String) -> Result<Self, PasswordError> {
        if raw.len() < PASSWORD_MIN_BYTES {
            return Err(PasswordError::TooShort);
        }
        text::check(&raw, TextKind::Secret)?;
        Self::candidate(raw)
    }

    /// A password offered at login. Only the upper bound applies: the lower one is a policy for
    /// new passwords and may change without locking anybody out.
    pub fn candidate(raw: String) -> Result<Self, PasswordError> {
        if raw.len() > PASSWORD_MAX_BYTES {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$...`). Opaque to the domain.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not the password, but offline cracking starts from it: keep it out of logs.
        f.write_str("PasswordHash([REDACTED])")
    }
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub created_at: DateTime<Utc>,
    /// A disabled account cannot log in and its tokens stop working.
    pub is_active: bool,
    /// Admins may be granted the `admin` scope.
    pub is_admin: bool,
    /// Whether the account's address was shown to receive mail (contract section 12). An
    /// unconfirmed change of address clears it.
    pub email_verified: bool,
}

/// What it takes to store a new account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: EmailAddress,
    pub password_hash: PasswordHash,
    pub is_admin: bool,
    /// Whether the address counts as verified from the start: only for an admin an operator
    /// creates from the command line, who vouches for it.
    pub email_verified: bool,
}

/// Changes to an account's status; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserFlags {
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
}

/// A user together with the hash their password is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: PasswordHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_keeps_its_spelling() {
        let email = EmailAddress::new("  Ann@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "Ann@Example.COM");
        assert_eq!(email.normalized(), "ann@example.com");
    }

    #[test]
    fn emails_differing_in_case_are_equal() {
        assert_eq!(
            EmailAddress::new("ann@example.com").unwrap(),
            EmailAddress::new("ANN@example.com").unwrap()
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for raw in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "Ann <ann@example.com>",
            "ann@[127.0.0.1]",
            "a b@example.com",
            "\"ann smith\"@example.com",
            "\"ann\"@example.com",
        ] {
            assert!(EmailAddress::new(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn overlong_email_is_rejected() {
        let raw = format!("{}@example.com", "a".repeat(250));
        let err = EmailAddress::new(&raw).unwrap_err();
        assert_eq!(err.raw, raw);
    }

    #[test]
    fn password_length_is_checked_in_bytes() {
        assert_eq!(
            Password::new("1234567".into()).unwrap_err(),
            PasswordError::TooShort
        );
        assert!(Password::new("12345678".into()).is_ok());
        // Four two-byte characters are eight bytes.
        assert!(Password::new("éééé".into()).is_ok());
        assert!(Password::new("a".repeat(1024)).is_ok());
        assert_eq!(
            Password::new("a".repeat(1025)).unwrap_err(),
            PasswordError::TooLong
        );
    }

    #[test]
    fn login_candidates_only_have_an_upper_bound() {
        assert!(Password::candidate("short".into()).is_ok());
        assert_eq!(
            Password::candidate("a".repeat(1025)).unwrap_err(),
            PasswordError::TooLong
        );
    }

    #[test]
    fn secrets_never_print() {
        let password = Password::new("correct horse".into()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
        let hash = PasswordHash::new("$argon2id$v=19$secret".into());
        assert!(!format!("{hash:?}").contains("secret"));
    }
}
