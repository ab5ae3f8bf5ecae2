//! Sessions: one per password login. Every token issued for a login names its session, so ending
//! the session ends the tokens.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{accounts::UserId, crypto::SecretHash, scope::Scopes};

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

/// The OAuth2 client a login came from (RFC 9068's `client_id` claim): 1 to 64 visible ASCII
/// characters, or [`ClientId::DEFAULT`] when the token request named none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

/// Why a `client_id` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client_id must be 1 to 64 visible ASCII characters")]
pub struct ClientIdError;

impl ClientId {
    /// The client of token requests that name none.
    pub const DEFAULT: &'static str = "warden";
    const MAX_LEN: usize = 64;

    /// A client id as a token request sent it.
    ///
    /// # Errors
    ///
    /// [`ClientIdError`] when it is empty, longer than 64 characters, or holds anything but
    /// visible ASCII (no spaces, no control characters).
    pub fn new(raw: &str) -> Result<Self, ClientIdError> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|byte| byte.is_ascii_graphic());
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ClientIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClientId {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

/// How the user proved who they are at login (RFC 8176's `amr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethods {
    /// A password.
    #[default]
    Password,
    /// A password and a one-time code (section 10 of the contract).
    PasswordAndOtp,
}

impl AuthMethods {
    /// The `amr` claim's values.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Self::Password => &["pwd"],
            Self::PasswordAndOtp => &["pwd", "otp"],
        }
    }

    /// As stored: the values separated by spaces.
    pub fn as_stored(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::PasswordAndOtp => "pwd otp",
        }
    }

    /// From [`AuthMethods::as_stored`]'s form.
    pub fn from_stored(stored: &str) -> Option<Self> {
        match stored {
            "pwd" => Some(Self::Password),
            "pwd otp" => Some(Self::PasswordAndOtp),
            _ => None,
        }
    }
}

/// Where and how a session began: recorded at login, shown in the list of the user's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionOrigin {
    pub client_id: ClientId,
    /// The login's `User-Agent`, without control characters, cut to 256 characters.
    pub user_agent: Option<String>,
    /// The client address of the login, as throttling sees it.
    pub ip_address: Option<IpAddr>,
    pub auth_methods: AuthMethods,
}

impl SessionOrigin {
    /// The most of a user agent that is kept, in characters.
    pub const MAX_USER_AGENT_CHARS: usize = 256;

    /// A user agent as kept: control characters dropped, cut to
    /// [`SessionOrigin::MAX_USER_AGENT_CHARS`], `None` when nothing is left.
    pub fn user_agent(raw: &str) -> Option<String> {
        let kept: String = raw
            .chars()
            .filter(|c| !c.is_control())
            .take(Self::MAX_USER_AGENT_CHARS)
            .collect();
        let kept = kept.trim();
        (!kept.is_empty()).then(|| kept.to_owned())
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
    /// When one of its tokens was last used: moved at every refresh, and by requests when it
    /// is more than [`Session::LAST_USED_PRECISION`] behind.
    pub last_used_at: DateTime<Utc>,
    pub origin: SessionOrigin,
}

impl Session {
    /// How far `last_used_at` may lag behind the last request: requests record their use only
    /// when it lags more, so that a busy session writes at most once a minute.
    pub const LAST_USED_PRECISION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }

    /// Whether a request at `now` should record its use of the session.
    pub fn use_is_stale_at(&self, now: DateTime<Utc>) -> bool {
        now - self.last_used_at > Self::LAST_USED_PRECISION
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
    pub origin: SessionOrigin,
}

/// A refresh token to store for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub hash: SecretHash,
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

/// Which page of a user's active sessions to list (newest first, as `GET /users/me/sessions`
/// pages them): those listed after session `before` when given, at most `limit`; an id that
/// names none of the user's sessions gives an empty page.
pub type SessionPage = crate::paging::KeysetPage<SessionId>;

/// The default page: 100 sessions, as many as an account holds by default
/// (`MAX_SESSIONS_PER_ACCOUNT`), so that the first page is the whole list.
impl crate::paging::PageKey for SessionId {
    const DEFAULT_LIMIT: i64 = 100;
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
            last_used_at: now,
            origin: SessionOrigin::default(),
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

    #[test]
    fn client_ids_are_visible_ascii_of_1_to_64() {
        assert_eq!(ClientId::new("swagger-ui").unwrap().as_str(), "swagger-ui");
        assert!(ClientId::new(&"x".repeat(64)).is_ok());
        for bad in ["", " ", "my app", "tab\t", "é", &"x".repeat(65)] {
            assert_eq!(ClientId::new(bad), Err(ClientIdError), "{bad:?}");
        }
        assert_eq!(ClientId::default().as_str(), "warden");
    }

    #[test]
    fn user_agents_lose_control_characters_and_are_cut() {
        assert_eq!(
            SessionOrigin::user_agent("curl/8.5\u{0}\r\n").as_deref(),
            Some("curl/8.5")
        );
        assert_eq!(SessionOrigin::user_agent(" \t "), None);
        let long = "é".repeat(300);
        assert_eq!(
            SessionOrigin::user_agent(&long).unwrap().chars().count(),
            256
        );
    }

    #[test]
    fn auth_methods_round_trip_through_storage() {
        for methods in [AuthMethods::Password, AuthMethods::PasswordAndOtp] {
            assert_eq!(AuthMethods::from_stored(methods.as_stored()), Some(methods));
        }
        assert_eq!(AuthMethods::Password.values(), ["pwd"]);
        assert_eq!(AuthMethods::from_stored("otp"), None);
    }

    #[test]
    fn use_is_recorded_when_it_lags_a_minute() {
        let (mut session, now) = session(None);
        session.last_used_at = now - TimeDelta::seconds(30);
        assert!(!session.use_is_stale_at(now));
        session.last_used_at = now - TimeDelta::seconds(61);
        assert!(session.use_is_stale_at(now));
    }
}
