//! Security events (contract section 11): what happened to an account, when, and from where.
//! An event is recorded by the same write as the change it records (the repository methods that
//! change accounts and sessions take the events to store with the change), so that the log
//! never tells of a change that did not happen, nor misses one that did.
//!
//! An event holds no password, code or token: only its kind, its time, the request's address
//! and user agent, and the session it concerns.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    accounts::UserId,
    sessions::{SessionId, SessionOrigin},
};

/// An event's id. Ids grow with time and are never reused, so that a page of events can start
/// `before` the last one seen (keyset paging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(i64);

impl EventId {
    pub fn new(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What happened. The names are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// A password login opened a session.
    Login,
    /// A login of an existing account was refused: wrong password or wrong second factor.
    LoginFailed,
    /// The caller ended their own session.
    Logout,
    /// A session was ended from the list of sessions (one, all others, or by an admin).
    SessionRevoked,
    /// A spent refresh token was presented again, and its session ended.
    RefreshReuseDetected,
    PasswordChanged,
    PasswordReset,
    EmailChanged,
    EmailVerified,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    AccountDisabled,
    AccountEnabled,
    AdminGranted,
    AdminRevoked,
    PersonalTokenCreated,
    PersonalTokenRevoked,
}

/// Why an event type was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventKind(pub String);

impl SecurityEventKind {
    /// Every kind, in the contract's order.
    pub const ALL: [Self; 18] = [
        Self::Login,
        Self::LoginFailed,
        Self::Logout,
        Self::SessionRevoked,
        Self::RefreshReuseDetected,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::EmailChanged,
        Self::EmailVerified,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::RecoveryCodeUsed,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::AdminGranted,
        Self::AdminRevoked,
        Self::PersonalTokenCreated,
        Self::PersonalTokenRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::EmailChanged => "email_changed",
            Self::EmailVerified => "email_verified",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::AdminGranted => "admin_granted",
            Self::AdminRevoked => "admin_revoked",
            Self::PersonalTokenCreated => "personal_token_created",
            Self::PersonalTokenRevoked => "personal_token_revoked",
        }
    }

    /// The kind a contract name stands for.
    ///
    /// # Errors
    ///
    /// [`UnknownEventKind`] for any other text.
    pub fn parse(name: &str) -> Result<Self, UnknownEventKind> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownEventKind(name.to_owned()))
    }
}

impl fmt::Display for SecurityEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request came from: its client address (as throttling sees it) and its user agent
/// (kept as [`SessionOrigin::user_agent`] keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestOrigin {
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestOrigin {
    /// The origin of a request with this address and raw `User-Agent`.
    pub fn new(ip_address: Option<IpAddr>, raw_user_agent: Option<&str>) -> Self {
        Self {
            ip_address,
            user_agent: raw_user_agent.and_then(SessionOrigin::user_agent),
        }
    }
}

/// What an event says about where it came from. Admin actions on another account record none of
/// it: the account's owner sees that an admin acted, not the admin's address or session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventContext {
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// The session the event concerns: the one opened or ended, or the one the caller acted
    /// from.
    pub session_id: Option<SessionId>,
}

impl EventContext {
    /// The context of a request from `origin` that concerns `session_id`.
    pub fn of(origin: &RequestOrigin, session_id: Option<SessionId>) -> Self {
        Self {
            ip_address: origin.ip_address,
            user_agent: origin.user_agent.clone(),
            session_id,
        }
    }
}

/// An event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecurityEvent {
    pub user_id: UserId,
    pub kind: SecurityEventKind,
    pub at: DateTime<Utc>,
    pub context: EventContext,
}

impl NewSecurityEvent {
    /// An event that happens now.
    pub fn now(user_id: UserId, kind: SecurityEventKind, context: EventContext) -> Self {
        Self {
            user_id,
            kind,
            at: Utc::now(),
            context,
        }
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub id: EventId,
    pub user_id: UserId,
    pub kind: SecurityEventKind,
    pub at: DateTime<Utc>,
    pub context: EventContext,
}

/// How many items one page of a keyset-paged list holds (events, sessions, personal tokens):
/// 1 to 200 (for events 50 when the caller does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimit(u8);

/// Why a page size was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {max}", max = EventLimit::MAX)]
pub struct EventLimitError;

impl EventLimit {
    pub const MAX: u8 = 200;
    pub const DEFAULT: Self = Self(50);

    /// # Errors
    ///
    /// [`EventLimitError`] outside 1..=200.
    pub fn new(limit: i64) -> Result<Self, EventLimitError> {
        u8::try_from(limit)
            .ok()
            .filter(|limit| (1..=Self::MAX).contains(limit))
            .map(Self)
            .ok_or(EventLimitError)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// Which events to list: newest first, those of `user_id` and of `kind` when given, older than
/// event `before` when given, and none from before `since` (the retention's cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub user_id: Option<UserId>,
    pub kind: Option<SecurityEventKind>,
    pub before: Option<EventId>,
    pub limit: EventLimit,
    pub since: DateTime<Utc>,
}

/// How long events are kept (`EVENT_RETENTION_DAYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRetention(TimeDelta);

impl EventRetention {
    pub fn days(days: u32) -> Self {
        Self(TimeDelta::days(days.into()))
    }

    /// The oldest instant an event may be from at `now` to still be kept.
    pub fn cutoff_at(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_contract_name() {
        for kind in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::parse(kind.as_str()), Ok(kind));
        }
        assert_eq!(
            SecurityEventKind::parse("Login"),
            Err(UnknownEventKind("Login".into()))
        );
    }

    #[test]
    fn a_page_holds_1_to_200_events() {
        assert_eq!(EventLimit::new(1).map(EventLimit::get), Ok(1));
        assert_eq!(EventLimit::new(200).map(EventLimit::get), Ok(200));
        for bad in [0, -1, 201, 256, i64::MAX] {
            assert_eq!(EventLimit::new(bad), Err(EventLimitError), "{bad}");
        }
    }

    #[test]
    fn the_retention_cuts_at_its_days() {
        let now = Utc::now();
        assert_eq!(
            EventRetention::days(90).cutoff_at(now),
            now - TimeDelta::days(90)
        );
    }
}
