//! What accounts need stored.

use async_trait::async_trait;

use crate::{
    accounts::{EmailAddress, NewUser, PasswordHash, User, UserCredentials, UserFlags, UserId},
    events::NewSecurityEvent,
    posts::Page,
};

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
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new, active user and returns it with its id and creation time.
    ///
    /// # Errors
    ///
    /// [`SaveUserError::Duplicate`] when the email is taken (case-insensitively); any failure
    /// of the storage is `Unknown`, marked [`Unavailable`](crate::error::Unavailable) when transient.
    async fn create_user(&self, new_user: &NewUser) -> Result<User, SaveUserError>;

    /// The user with this id, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient), or a stored row that
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
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
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
    /// storage (marked [`Unavailable`](crate::error::Unavailable) when transient). Nothing is deleted then.
    async fn delete_user(&self, id: UserId) -> Result<bool, UserChangeError>;
}
