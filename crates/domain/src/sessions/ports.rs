//! What sessions need stored.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    accounts::{User, UserId},
    crypto::SecretHash,
    events::NewSecurityEvent,
    sessions::{NewRefreshToken, NewSession, Rotation, Session, SessionId, SessionPage},
};

/// Stores login sessions and their refresh tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session and its first refresh token, both or neither, and returns the
    /// session. If the user holds `max_sessions` active sessions or more, the least recently
    /// used are ended in the same transaction, so that they hold `max_sessions` with the new
    /// one; each ended one is recorded as a `session_revoked` event from the new login's
    /// origin. Concurrent logins of one user never leave more.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// Any failure, including a user id that does not exist; then nothing is stored or ended.
    async fn create_session(
        &self,
        new_session: &NewSession,
        refresh_token: &NewRefreshToken,
        max_sessions: u32,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<Session>;

    /// The session with this id, or `None` (also when its user was deleted).
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient), or a stored row that
    /// does not pass the domain's validation.
    async fn find_session(&self, id: SessionId) -> anyhow::Result<Option<Session>>;

    /// The session with this id and its user, read together (one round trip), or `None` (also
    /// when its user was deleted). Authenticating a request needs both.
    ///
    /// # Errors
    ///
    /// As [`SessionRepository::find_session`].
    async fn find_session_with_user(
        &self,
        id: SessionId,
    ) -> anyhow::Result<Option<(Session, User)>>;

    /// The session the refresh token hashed as `presented` belongs to, spent or not, or `None`.
    ///
    /// # Errors
    ///
    /// As [`SessionRepository::find_session`].
    async fn find_session_by_refresh_token(
        &self,
        presented: &SecretHash,
    ) -> anyhow::Result<Option<Session>>;

    /// Spends the refresh token hashed as `presented` and stores `next` for the same session,
    /// atomically, if `presented` is live (unspent and unexpired at `now`); the session's
    /// `last_used_at` becomes `now`. Of concurrent calls
    /// with one token, exactly one sees [`Rotation::Rotated`]; the others see
    /// [`Rotation::Replayed`].
    ///
    /// # Errors
    ///
    /// A failure of the storage; then neither token changed.
    async fn rotate_refresh_token(
        &self,
        presented: &SecretHash,
        next: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Rotation>;

    /// Ends a session at `at`, if it is not ended already. Returns whether it ended it.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn revoke_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// One page of the sessions of `user` that are active at `now` (neither ended nor
    /// expired), newest first (ties in id order).
    ///
    /// # Errors
    ///
    /// As [`SessionRepository::find_session`].
    async fn list_active_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        page: SessionPage,
    ) -> anyhow::Result<Vec<Session>>;

    /// Deletes the sessions that ended or expired before `cutoff` (with their refresh
    /// tokens), and the refresh tokens that were spent or expired before `cutoff`. Returns how
    /// many rows it deleted.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn delete_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Ends session `id` at `at` if it is `user`'s and active at `at`. Returns whether it
    /// ended it: `false` for an unknown, ended, expired or someone else's session.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn revoke_session_of_user(
        &self,
        user: UserId,
        id: SessionId,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Records that session `id` was used at `at` (its `last_used_at`), unless a later use is
    /// recorded already.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn record_session_use(&self, id: SessionId, at: DateTime<Utc>) -> anyhow::Result<()>;

    /// Ends every session of `user` but `except` at `at`. Returns how many it ended.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn revoke_sessions_of_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<u64>;
}
