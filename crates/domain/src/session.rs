//! Sessions: one per password login. Every token issued for a login names its session, so ending
//! the session ends the tokens.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Scopes, UserId};

/// A session's id: a random UUID, so ids reveal nothing about how many logins there were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(Uuid);

impl SessionId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }

    /// Parses the hyphenated form found in a token's `sid` claim.
    pub fn parse(raw: &str) -> Option<Self> {
        Uuid::try_parse(raw).ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    /// The absolute end of the session, however it is used.
    pub expires_at: DateTime<Utc>,
    /// When the session was ended early (logout, password change, account disabled).
    pub revoked_at: Option<DateTime<Utc>>,
    /// The scopes granted at login: the most any of its tokens may carry.
    pub scopes: Scopes,
}

impl Session {
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What it takes to store a new session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub scopes: Scopes,
}

/// A refresh token as stored: a hash of the secret the client holds, never the secret itself.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenHash([REDACTED])")
    }
}

/// A refresh token to store for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub hash: RefreshTokenHash,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now spent and the next one stored in its place. The session
    /// is returned as it is, active or not: whether it may still be used is the caller's call.
    Rotated(Session),
    /// The token had been spent already: somebody is replaying it.
    Replayed(SessionId),
    /// No such token, or it has expired.
    Invalid,
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn session(revoked_at: Option<DateTime<Utc>>) -> (Session, DateTime<Utc>) {
        let now = Utc::now();
        let session = Session {
            id: SessionId::random(),
            user_id: UserId::new(1),
            created_at: now,
            expires_at: now + TimeDelta::hours(1),
            revoked_at,
            scopes: Scopes::allowed_for(false),
        };
        (session, now)
    }

    #[test]
    fn a_session_is_active_until_it_expires() {
        let (session, now) = session(None);
        assert!(session.is_active_at(now));
        assert!(!session.is_active_at(session.expires_at));
    }

    #[test]
    fn a_revoked_session_is_not_active() {
        let (session, now) = session(Some(Utc::now()));
        assert!(!session.is_active_at(now));
    }

    #[test]
    fn session_ids_round_trip_through_their_text_form() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        assert_eq!(SessionId::parse("not-a-uuid"), None);
    }
}
