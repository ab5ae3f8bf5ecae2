//! Ports: what the domain needs from the outside world. Adapters implement them; services hold
//! them as `Arc<dyn Port>`; tests mock them (`MockUserRepository` and friends, built with the
//! `mocks` feature or in this crate's own tests).

use async_trait::async_trait;

use crate::{
    AccessClaims, AccessGrant, InvalidTokenError, IssuedToken, NewSession, NewUser, Password,
    PasswordHash, Session, SessionId, User, UserCredentials, UserId,
};

/// Why storing a new user failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Another account already has this email, compared case-insensitively.
    #[error("a user with email {email} already exists")]
    Duplicate { email: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Stores accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new, active, non-admin user and returns it with its id and creation time.
    ///
    /// Errors: [`CreateUserError::Duplicate`] when the email is taken (case-insensitively);
    /// anything else is `Unknown`.
    async fn create(&self, new_user: &NewUser) -> Result<User, CreateUserError>;

    /// The user with this id, or `None`.
    async fn find_by_id(&self, id: UserId) -> anyhow::Result<Option<User>>;

    /// The user with this email (case-insensitively) and their password hash, or `None`.
    async fn find_credentials_by_email(
        &self,
        email: &crate::EmailAddress,
    ) -> anyhow::Result<Option<UserCredentials>>;
}

/// Stores login sessions.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session and returns it.
    ///
    /// Errors: any failure, including a user id that does not exist, is `Err`.
    async fn create(&self, new_session: &NewSession) -> anyhow::Result<Session>;

    /// The session with this id, or `None` (also when its user was deleted).
    async fn find(&self, id: SessionId) -> anyhow::Result<Option<Session>>;
}

/// Hashes and checks passwords. Implementations are deliberately slow; they must not block the
/// async executor.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// A fresh salted hash of `password`.
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash>;

    /// Whether `candidate` matches `hash`. A hash that cannot be parsed is `Err`.
    async fn verify(&self, candidate: &Password, hash: &PasswordHash) -> anyhow::Result<bool>;

    /// Does the same work as [`PasswordHasher::verify`] against a hash of no real account, and
    /// throws the answer away. Login calls it when there is no hash to check, so that unknown
    /// accounts take as long to refuse as wrong passwords.
    async fn verify_dummy(&self, candidate: &Password) -> anyhow::Result<()>;
}

/// Signs access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenIssuer: Send + Sync + 'static {
    /// A signed access token for `grant`, valid from now for the configured lifetime.
    async fn issue(&self, grant: &AccessGrant) -> anyhow::Result<IssuedToken>;
}

/// Checks access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// The claims of `token` if its signature, algorithm, type, issuer, audience and validity
    /// period all check out; otherwise [`InvalidTokenError`] with the reason.
    async fn verify(&self, token: &str) -> Result<AccessClaims, InvalidTokenError>;
}
