//! Ports: what the domain needs from the outside world. Adapters implement them; services hold
//! them as `Arc<dyn Port>`; tests mock them (`MockUserRepository` and friends, built with the
//! `mocks` feature or in this crate's own tests).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    AccessClaims, AccessGrant, EmailAddress, InvalidTokenError, IssuedToken, NewRefreshToken,
    NewSecurityEvent, NewSession, NewUser, Page, Password, PasswordHash, Post, PostDraft, PostId,
    PostList, PostQuery, Rotation, SecretHash, Session, SessionId, SessionPage, ThrottleKey, User,
    UserCredentials, UserFlags, UserId,
};

/// What is behind a port cannot serve right now: the connection to the storage was refused or
/// lost, no connection could be had in time, the database is shutting down or busy, or too many
/// passwords wait to be hashed. Adapters put it in the error chain of such failures, so that
/// callers can tell "try again shortly" from a bug; [`is_unavailable`] looks for it.
#[derive(Debug, thiserror::Error)]
#[error("storage unavailable")]
pub struct Unavailable {
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Whether `err` is (caused by) [`Unavailable`].
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<Unavailable>())
}

/// Why storing a user failed.
#[derive(Debug, thiserror::Error)]
pub enum SaveUserError {
    /// Another account already has this email, compared case-insensitively.
    #[error("a user with email {email} already exists")]
    Duplicate { email: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Why changing an account's flags, or deleting it, failed.
#[derive(Debug, thiserror::Error)]
pub enum UserChangeError {
    /// The change would leave the service without an active admin. Decided in the database,
    /// against the admins as they are when the change is made, so that two admins demoting
    /// each other at once leave one.
    #[error("at least one active admin must remain")]
    LastAdmin,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Stores accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new, active user and returns it with its id and creation time.
    ///
    /// # Errors
    ///
    /// [`SaveUserError::Duplicate`] when the email is taken (case-insensitively); any failure
    /// of the storage is `Unknown`, marked [`Unavailable`] when transient.
    async fn create_user(&self, new_user: &NewUser) -> Result<User, SaveUserError>;

    /// The user with this id, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient), or a stored row that
    /// does not pass the domain's validation.
    async fn find_user(&self, id: UserId) -> anyhow::Result<Option<User>>;

    /// The user with this email (case-insensitively) and their password hash, or `None`.
    ///
    /// # Errors
    ///
    /// As [`UserRepository::find_user`].
    async fn find_credentials_by_email(
        &self,
        email: &EmailAddress,
    ) -> anyhow::Result<Option<UserCredentials>>;

    /// The user with this id and their password hash, or `None`.
    ///
    /// # Errors
    ///
    /// As [`UserRepository::find_user`].
    async fn find_credentials_by_id(&self, id: UserId) -> anyhow::Result<Option<UserCredentials>>;

    /// One page of users, in id order.
    ///
    /// # Errors
    ///
    /// As [`UserRepository::find_user`].
    async fn list_users(&self, page: Page) -> anyhow::Result<Vec<User>>;

    /// Changes a user's email, and spends the user's pending emailed tokens (those mailed to the
    /// old address among them). Returns the user as it is now, or `None` if there is no such
    /// user.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// [`SaveUserError::Duplicate`] when another account has the email; a failure of the storage
    /// is `Unknown`.
    async fn update_email(
        &self,
        id: UserId,
        email: &EmailAddress,
        events: &[NewSecurityEvent],
    ) -> Result<Option<User>, SaveUserError>;

    /// Replaces a user's password hash, and spends the user's pending email change and reset
    /// tokens. Returns whether the user exists.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient).
    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Sets the flags given. Returns the user as it is now, or `None` if there is no such user.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// [`UserChangeError::LastAdmin`], changing nothing, when the user is the only active
    /// admin and would no longer be one; otherwise as [`UserRepository::find_user`].
    async fn update_user_flags(
        &self,
        id: UserId,
        flags: UserFlags,
        events: &[NewSecurityEvent],
    ) -> Result<Option<User>, UserChangeError>;

    /// Deletes a user with their sessions, posts and votes. Returns whether the user existed.
    ///
    /// # Errors
    ///
    /// [`UserChangeError::LastAdmin`] when the user is the only active admin; a failure of the
    /// storage (marked [`Unavailable`] when transient). Nothing is deleted then.
    async fn delete_user(&self, id: UserId) -> Result<bool, UserChangeError>;
}

mod accounts;
mod mail;

pub use accounts::*;
pub use mail::*;

/// Stores login sessions and their refresh tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
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
    /// A failure of the storage (marked [`Unavailable`] when transient), or a stored row that
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
    /// A failure of the storage (marked [`Unavailable`] when transient).
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
    /// A failure of the storage (marked [`Unavailable`] when transient).
    async fn delete_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Ends session `id` at `at` if it is `user`'s and active at `at`. Returns whether it
    /// ended it: `false` for an unknown, ended, expired or someone else's session.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient).
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
    /// A failure of the storage (marked [`Unavailable`] when transient).
    async fn record_session_use(&self, id: SessionId, at: DateTime<Utc>) -> anyhow::Result<()>;

    /// Ends every session of `user` but `except` at `at`. Returns how many it ended.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient).
    async fn revoke_sessions_of_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<u64>;
}

/// Makes the secrets Warden hands out and recognises later (refresh tokens, `mfa_token`s, mailed
/// tokens, personal access tokens): opaque random secrets for clients, and the hashes stored in
/// their place.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretCodec: Send + Sync + 'static {
    /// A new secret (at least 256 random bits) and its hash.
    fn generate(&self) -> (String, SecretHash);

    /// The hash of a secret a client presents.
    fn hash(&self, presented: &str) -> SecretHash;
}

/// Stores posts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PostRepository: Send + Sync + 'static {
    /// Stores a new post owned by `owner` and returns it, with no votes.
    ///
    /// # Errors
    ///
    /// Any failure, including an owner that does not exist; then nothing is stored.
    async fn create_post(&self, owner: UserId, draft: &PostDraft) -> anyhow::Result<Post>;

    /// The post with this id, whoever may see it, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient), or a stored row that
    /// does not pass the domain's validation.
    async fn find_post(&self, id: PostId) -> anyhow::Result<Option<Post>>;

    /// One page of the posts `query.viewer` may see (every published post and their own
    /// unpublished ones) whose title contains `query.search` ignoring case, newest first (ties
    /// broken by id, newest first), and how many such posts there are in all, counted up to
    /// [`crate::MAX_COUNTED_POSTS`]. One query for the page, however many posts it holds.
    ///
    /// # Errors
    ///
    /// As [`PostRepository::find_post`].
    async fn list_posts(&self, query: &PostQuery) -> anyhow::Result<PostList>;

    /// Replaces the post's title, content and published flag, and sets its update time to now.
    /// Returns the post as it is now, or `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// As [`PostRepository::find_post`]; nothing is changed then.
    async fn replace_post(&self, id: PostId, draft: &PostDraft) -> anyhow::Result<Option<Post>>;

    /// Deletes the post and its votes. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient); nothing is deleted then.
    async fn delete_post(&self, id: PostId) -> anyhow::Result<bool>;
}

/// Why storing a vote failed.
#[derive(Debug, thiserror::Error)]
pub enum AddVoteError {
    /// The user has already voted on the post (also when two votes race: exactly one wins).
    #[error("user {user} has already voted on post {post}")]
    AlreadyVoted { user: UserId, post: PostId },
    /// The post does not exist (any more).
    #[error("post {0} does not exist")]
    PostNotFound(PostId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Stores votes: at most one per user and post.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait VoteRepository: Send + Sync + 'static {
    /// Records `user`'s vote on `post`.
    ///
    /// # Errors
    ///
    /// [`AddVoteError::AlreadyVoted`] if there is one already, [`AddVoteError::PostNotFound`] if
    /// the post does not exist; a failure of the storage is `Unknown`.
    async fn add_vote(&self, user: UserId, post: PostId) -> Result<(), AddVoteError>;

    /// Takes back `user`'s vote on `post`. Returns whether there was one.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient).
    async fn remove_vote(&self, user: UserId, post: PostId) -> anyhow::Result<bool>;
}

/// Hashes and checks passwords. Implementations are deliberately slow; they must not block the
/// async executor.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A fresh salted hash of `password`.
    ///
    /// # Errors
    ///
    /// The hasher failed or is overloaded (marked [`Unavailable`]: retry shortly).
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash>;

    /// Whether `candidate` matches `hash`.
    ///
    /// # Errors
    ///
    /// A hash that cannot be parsed; otherwise as [`PasswordHasher::hash`].
    async fn verify_password(
        &self,
        candidate: &Password,
        hash: &PasswordHash,
    ) -> anyhow::Result<bool>;

    /// Does the same work as [`PasswordHasher::verify`] against a hash of no real account, and
    /// throws the answer away. Login calls it when there is no hash to check, so that unknown
    /// accounts take as long to refuse as wrong passwords.
    ///
    /// # Errors
    ///
    /// As [`PasswordHasher::hash`].
    async fn verify_dummy(&self, candidate: &Password) -> anyhow::Result<()>;
}

/// Counts brute-force budgets (see [`crate::throttle`]). Each implementation is built with the
/// [`Rates`](crate::Rates) it enforces; a key whose kind has no rate is never counted and never
/// refused.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// Takes one unit from each of `keys`, unless one of them has none left: then takes
    /// nothing and answers how long to wait (the longest wait of the keys that ran out).
    /// Atomic: racing reservations never overdraw a key, and a refused one changes no key.
    /// A reservation is made *before* the guess it pays for is checked (a password, a code),
    /// so that a burst of guesses gets no more checks than the budget has units.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`] when transient).
    async fn reserve(&self, keys: &[ThrottleKey]) -> anyhow::Result<Option<std::time::Duration>>;

    /// Gives back to each of `keys` the unit a [`ThrottleStore::reserve`] of them took, when what
    /// it was taken for does not count (the password was right, say). A key whose budget is
    /// whole stays whole.
    ///
    /// # Errors
    ///
    /// As [`ThrottleStore::reserve`].
    async fn refund(&self, keys: &[ThrottleKey]) -> anyhow::Result<()>;

    /// Forgets the keys whose budget is whole again, so that storage stays bounded by recent
    /// activity. Returns how many were forgotten.
    ///
    /// # Errors
    ///
    /// As [`ThrottleStore::reserve`].
    async fn prune(&self) -> anyhow::Result<u64>;
}

/// Signs access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenIssuer: Send + Sync + 'static {
    /// A signed access token for `grant`, valid from now for the configured lifetime.
    ///
    /// # Errors
    ///
    /// Signing failed: a bug or a broken key.
    async fn issue(&self, grant: &AccessGrant) -> anyhow::Result<IssuedToken>;
}

/// Checks access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// The claims of `token` if its signature, algorithm, type, issuer, audience and validity
    /// period all check out.
    ///
    /// # Errors
    ///
    /// [`InvalidTokenError`] with the reason (for logs, never for clients).
    async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, InvalidTokenError>;
}
