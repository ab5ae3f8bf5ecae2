//! Second factors (contract section 10): TOTP secrets as stored and as used, recovery codes, and
//! the challenge a password login answers when a second factor is needed.
//!
//! The secret is sealed (encrypted) before it is stored and opened only to check a code, so a
//! copy of the database alone does not give it away (docs/security.md). Recovery codes and
//! `mfa_token`s are high-entropy secrets, stored only as hashes.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretSlice};

use crate::{accounts::UserId, crypto::SecretHash, scope::Scopes, sessions::ClientId};

/// A TOTP shared secret, as the authenticator app and Warden both hold it. Never prints.
pub struct TotpSecret(SecretSlice<u8>);

impl TotpSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// A TOTP secret as stored: encrypted, with what it takes to decrypt it but the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTotpSecret(String);

impl SealedTotpSecret {
    pub fn new(sealed: String) -> Self {
        Self(sealed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SealedTotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedTotpSecret(..)")
    }
}

/// What a user needs to add an account to an authenticator app.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/Warden:<email>?secret=...&issuer=Warden`.
    pub otpauth_uri: String,
    /// An SVG QR code of the URI.
    pub qr_svg: String,
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpEnrolment([REDACTED])")
    }
}

/// A user's TOTP factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub user_id: UserId,
    pub secret: SealedTotpSecret,
    /// `None` while pending: enrolment started, no code confirmed yet.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The newest time step whose code was accepted: no code of it or of an earlier step is
    /// accepted again (RFC 6238 section 5.2).
    pub last_used_step: Option<i64>,
}

impl TotpFactor {
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

/// A recovery code as stored: a hash of the code the user holds.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodeHash(String);

impl RecoveryCodeHash {
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCodeHash([REDACTED])")
    }
}

/// A fresh set of recovery codes: the codes, shown once, and the hashes stored in their place.
pub struct RecoveryCodes {
    pub codes: Vec<String>,
    pub hashes: Vec<RecoveryCodeHash>,
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("count", &self.codes.len())
            .finish_non_exhaustive()
    }
}

impl RecoveryCodes {
    /// How many codes a set holds.
    pub const COUNT: usize = 10;
}

/// What a password login of an account with a second factor leaves, for the second step to
/// finish: stored under the hash of its `mfa_token` (made like a refresh token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub token_hash: SecretHash,
    pub user_id: UserId,
    /// The scopes the login will get.
    pub scopes: Scopes,
    pub client_id: ClientId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Codes tried so far, each counted before it was checked.
    pub failures: u32,
    pub spent_at: Option<DateTime<Utc>>,
}

impl MfaChallenge {
    /// How long an `mfa_token` lasts.
    pub const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
    /// At most this many codes are checked with one `mfa_token`: then it is spent.
    pub const MAX_FAILURES: u32 = 5;

    /// Whether the second step may still use it at `now`.
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        self.spent_at.is_none() && now < self.expires_at && self.failures < Self::MAX_FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_codes_never_print() {
        let secret = TotpSecret::new(b"12345678901234567890".to_vec());
        assert_eq!(format!("{secret:?}"), "TotpSecret([REDACTED])");
        let codes = RecoveryCodes {
            codes: vec!["abcd-efgh".into()],
            hashes: vec![RecoveryCodeHash::new("h".into())],
        };
        assert!(!format!("{codes:?}").contains("abcd"));
        assert!(!format!("{:?}", RecoveryCodeHash::new("h4sh".into())).contains("h4sh"));
    }

    #[test]
    fn a_challenge_is_live_until_spent_expired_or_failed_five_times() {
        let now = Utc::now();
        let mut challenge = MfaChallenge {
            token_hash: SecretHash::new("h".into()),
            user_id: UserId::new(1),
            scopes: Scopes::allowed_for(false),
            client_id: ClientId::default(),
            created_at: now,
            expires_at: now + MfaChallenge::LIFETIME,
            failures: 4,
            spent_at: None,
        };
        assert!(challenge.is_live_at(now));
        assert!(!challenge.is_live_at(challenge.expires_at));
        challenge.failures = 5;
        assert!(!challenge.is_live_at(now));
        challenge.failures = 0;
        challenge.spent_at = Some(now);
        assert!(!challenge.is_live_at(now));
    }
}
