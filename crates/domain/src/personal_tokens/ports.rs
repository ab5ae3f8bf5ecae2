//! What personal access tokens need stored (contract section 13).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    accounts::{User, UserId},
    crypto::SecretHash,
    events::NewSecurityEvent,
    personal_tokens::{NewPersonalToken, PersonalToken, PersonalTokenId, PersonalTokenPage},
};

/// Stores personal access tokens (contract section 13).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PersonalTokenRepository: Send + Sync + 'static {
    /// Stores a new token and returns it with its id, unless the user holds `max_tokens` live
    /// tokens (neither revoked nor expired at the new token's `created_at`) already: then it
    /// stores nothing and returns `None`. Decided atomically: concurrent calls for one user
    /// never store more.
    /// `events` are recorded with it, in the same transaction.
    ///
    /// # Errors
    ///
    /// A failure of the storage, including a user that does not exist; then nothing is stored.
    async fn create_personal_token(
        &self,
        token: &NewPersonalToken,
        max_tokens: u32,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<Option<PersonalToken>>;

    /// One page of the user's tokens that are active at `now` (neither revoked nor expired),
    /// newest first.
    ///
    /// # Errors
    ///
    /// A failure of the storage, or a stored row that does not pass the domain's validation.
    async fn list_personal_tokens(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        page: PersonalTokenPage,
    ) -> anyhow::Result<Vec<PersonalToken>>;

    /// Deletes the tokens that were revoked or expired before `cutoff`. Returns how many.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn delete_personal_tokens_ended_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> anyhow::Result<u64>;

    /// The token hashed as `hash` with its user, read together (one indexed lookup), active or
    /// not, or `None` (also when its user was deleted).
    ///
    /// # Errors
    ///
    /// As [`PersonalTokenRepository::list_personal_tokens`].
    async fn find_personal_token(
        &self,
        hash: &SecretHash,
    ) -> anyhow::Result<Option<(PersonalToken, User)>>;

    /// Revokes token `id` at `at` if it is `user`'s and not revoked already. Returns whether it
    /// revoked it.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn revoke_personal_token(
        &self,
        user: UserId,
        id: PersonalTokenId,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Records that token `id` was used at `at`, unless a later use is recorded already.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn record_personal_token_use(
        &self,
        id: PersonalTokenId,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()>;
}
