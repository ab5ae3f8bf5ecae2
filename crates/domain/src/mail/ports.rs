//! The ports of email (contract section 12): emailed tokens and the outbox, and the mail server.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    accounts::{EmailAddress, NewUser, PasswordHash, SaveUserError, User, UserId},
    crypto::SecretHash,
    events::NewSecurityEvent,
    mail::{EmailToken, MailId, NewEmailToken, OutgoingMail, QueuedMail},
};

/// Stores emailed tokens and the outbox. Every method that issues a token stores the mails that
/// carry it in the same transaction: a mail is in the outbox exactly when its token exists.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MailRepository: Send + Sync + 'static {
    /// Stores a new, active user with its verification token and mail, all or none, and
    /// returns the user.
    ///
    /// # Errors
    ///
    /// As [`UserRepository::create_user`](crate::accounts::UserRepository::create_user).
    async fn create_user_with_mail(
        &self,
        new_user: &NewUser,
        token: &NewEmailToken,
        mail: &OutgoingMail,
    ) -> Result<User, SaveUserError>;

    /// Stores `token` for `user` and queues `mails`, all or none.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient),
    /// including a user that does not exist; then nothing is stored.
    async fn issue_email_token(
        &self,
        user: UserId,
        token: &NewEmailToken,
        mails: &[OutgoingMail],
    ) -> anyhow::Result<()>;

    /// The token stored under `hash`, spent or not, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage, or a stored row that does not pass the domain's validation.
    async fn find_email_token(&self, hash: &SecretHash) -> anyhow::Result<Option<EmailToken>>;

    /// Spends the reset token `token` of `user` if it is live at `now`, and then, in the same
    /// transaction: sets the password hash, marks the address verified if it is still the one
    /// the token was sent to, spends the user's other pending emailed tokens, ends every session
    /// of the user and revokes every personal access token. Returns whether the token was live.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient);
    /// then nothing changed.
    async fn reset_password(
        &self,
        token: &SecretHash,
        user: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Spends the verification token `token` of `user` if it is live at `now` and the user's
    /// address is still `email`, and marks the address verified. Returns whether it did.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// As [`MailRepository::reset_password`].
    async fn verify_email(
        &self,
        token: &SecretHash,
        user: UserId,
        email: &EmailAddress,
        now: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Spends the email change token `token` of `user` if it is live at `now`, moves the user
    /// to `email`, verified, and spends the user's other pending emailed tokens (those mailed to
    /// the old address among them). Returns whether it did.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// [`SaveUserError::Duplicate`] when another account has taken `email` meanwhile (then
    /// nothing changed, and the token is still live); a failure of the storage is `Unknown`.
    async fn change_email_confirmed(
        &self,
        token: &SecretHash,
        user: UserId,
        email: &EmailAddress,
        now: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> Result<bool, SaveUserError>;

    /// Deletes the tokens that expired before `now`. Returns how many.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn delete_expired_email_tokens(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Takes the outbox's next mail due at `now`, if any, and leases it until `lease_until`:
    /// until then no other call (of this or another instance) takes it. Counts the attempt.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient),
    /// or a stored row that does not pass the domain's validation.
    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> anyhow::Result<Option<QueuedMail>>;

    /// Removes a mail from the outbox: it was sent, or given up. Its token goes with it.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn remove_mail(&self, id: MailId) -> anyhow::Result<()>;

    /// Makes a mail due again at `at`, after a failed attempt.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn retry_mail(&self, id: MailId, at: DateTime<Utc>) -> anyhow::Result<()>;
}

/// Delivers a mail to the mail server.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MailSender: Send + Sync + 'static {
    /// Renders `mail` and hands it to the mail server.
    ///
    /// # Errors
    ///
    /// The server could not be reached, refused the mail, or did not answer in time. The error
    /// never holds the mail's token.
    async fn send(&self, mail: &OutgoingMail) -> anyhow::Result<()>;
}
