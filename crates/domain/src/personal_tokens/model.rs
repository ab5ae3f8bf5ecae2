//! Personal access tokens (contract section 13): long-lived, scoped bearer tokens for scripts
//! and for Swagger UI users with a second factor. The token itself (`wdn_pat_` and 256 random
//! bits) is shown once; only its hash is stored.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    accounts::UserId,
    crypto::SecretHash,
    posts::{TextError, check_text},
    scope::Scopes,
    text::TextKind,
};

/// The prefix of every personal access token, so that it is told from a JWT at a glance (and
/// by secret scanners).
pub const PERSONAL_TOKEN_PREFIX: &str = "wdn_pat_";

/// A personal access token's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PersonalTokenId(i64);

impl PersonalTokenId {
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for PersonalTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What its owner calls a token: 1 to 100 characters of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalTokenName(String);

impl PersonalTokenName {
    pub const MAX_CHARS: usize = 100;

    /// # Errors
    ///
    /// [`TextError`] for an empty or blank name, one over 100 characters, or a character the
    /// text model refuses.
    pub fn new(raw: String) -> Result<Self, TextError> {
        check_text(&raw, Self::MAX_CHARS, TextKind::Line)?;
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a token lasts: 1 to 365 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonalTokenLifetime(u16);

/// Why a lifetime was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and 365 days")]
pub struct PersonalTokenLifetimeError;

impl PersonalTokenLifetime {
    /// # Errors
    ///
    /// [`PersonalTokenLifetimeError`] outside 1..=365.
    pub fn days(days: i64) -> Result<Self, PersonalTokenLifetimeError> {
        u16::try_from(days)
            .ok()
            .filter(|days| (1..=365).contains(days))
            .map(Self)
            .ok_or(PersonalTokenLifetimeError)
    }

    pub fn as_delta(self) -> TimeDelta {
        TimeDelta::days(self.0.into())
    }
}

/// A personal access token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalToken {
    pub id: PersonalTokenId,
    pub user_id: UserId,
    pub name: PersonalTokenName,
    /// The scopes it was created with; it never carries more than the account may hold now.
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When it was last used, to within a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl PersonalToken {
    /// How far `last_used_at` may lag behind the last request, as for sessions.
    pub const LAST_USED_PRECISION: TimeDelta = TimeDelta::seconds(60);

    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Whether a request at `now` should record its use.
    pub fn use_is_stale_at(&self, now: DateTime<Utc>) -> bool {
        self.last_used_at
            .is_none_or(|last| now - last > Self::LAST_USED_PRECISION)
    }
}

/// What it takes to store a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPersonalToken {
    pub user_id: UserId,
    pub name: PersonalTokenName,
    pub scopes: Scopes,
    /// The hash of the token (made like a refresh token's).
    pub hash: SecretHash,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Which page of a user's live personal tokens to list, newest first: those older than token
/// `before` when given, at most `limit`.
pub type PersonalTokenPage = crate::paging::KeysetPage<PersonalTokenId>;

/// The default page: 50 tokens, as many as an account holds by default
/// (`MAX_PERSONAL_TOKENS`), so that the first page is the whole list.
impl crate::paging::PageKey for PersonalTokenId {
    const DEFAULT_LIMIT: i64 = 50;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_line_of_1_to_100_characters() {
        assert!(PersonalTokenName::new("deploy script".into()).is_ok());
        assert!(PersonalTokenName::new("é".repeat(100)).is_ok());
        for bad in ["", "  ", "two\nlines"] {
            assert!(PersonalTokenName::new(bad.into()).is_err(), "{bad:?}");
        }
        assert!(PersonalTokenName::new("x".repeat(101)).is_err());
    }

    #[test]
    fn lifetimes_are_1_to_365_days() {
        assert_eq!(
            PersonalTokenLifetime::days(30).unwrap().as_delta(),
            TimeDelta::days(30)
        );
        for bad in [0, -1, 366, i64::MAX] {
            assert_eq!(
                PersonalTokenLifetime::days(bad),
                Err(PersonalTokenLifetimeError)
            );
        }
    }

    #[test]
    fn a_token_is_active_until_revoked_or_expired_and_records_use_once_a_minute() {
        let now = Utc::now();
        let mut token = PersonalToken {
            id: PersonalTokenId::new(1),
            user_id: UserId::new(1),
            name: PersonalTokenName::new("ci".into()).unwrap(),
            scopes: Scopes::parse("posts:read").unwrap(),
            created_at: now,
            expires_at: now + TimeDelta::days(1),
            last_used_at: None,
            revoked_at: None,
        };
        assert!(token.is_active_at(now));
        assert!(!token.is_active_at(token.expires_at));
        assert!(token.use_is_stale_at(now));
        token.last_used_at = Some(now - TimeDelta::seconds(30));
        assert!(!token.use_is_stale_at(now));
        token.revoked_at = Some(now);
        assert!(!token.is_active_at(now));
    }
}
