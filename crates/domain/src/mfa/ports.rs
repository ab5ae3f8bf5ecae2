//! What second factors need stored (contract section 10).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    accounts::UserId,
    crypto::SecretHash,
    events::NewSecurityEvent,
    mfa::{MfaChallenge, RecoveryCodeHash, SealedTotpSecret, TotpFactor},
};

/// Stores second factors (contract section 10): TOTP factors, recovery codes, and the
/// challenges of logins waiting for their second step.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MfaRepository: Send + Sync + 'static {
    /// The user's TOTP factor, pending or confirmed, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn find_totp(&self, user: UserId) -> anyhow::Result<Option<TotpFactor>>;

    /// Stores `secret` as the user's pending factor, replacing a pending one. Returns `false`,
    /// storing nothing, if the user has a confirmed factor.
    ///
    /// # Errors
    ///
    /// A failure of the storage, including a user that does not exist.
    async fn save_pending_totp(
        &self,
        user: UserId,
        secret: &SealedTotpSecret,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Confirms the user's pending factor with a code of time step `step`, and stores
    /// `recovery` as their recovery codes (replacing any), atomically. Returns `false`,
    /// changing nothing, if no factor is pending.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery: &[RecoveryCodeHash],
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Spends time step `step` of the user's confirmed factor: returns `true` if no code of it
    /// or of a later step was accepted before. Of concurrent calls with one step, one wins.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn use_totp_step(&self, user: UserId, step: i64) -> anyhow::Result<bool>;

    /// Spends the user's unused recovery code hashed as `code`: returns whether there was one.
    /// Of concurrent calls with one code, one wins.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool>;

    /// Replaces the user's recovery codes with `recovery`, if they have a confirmed factor:
    /// returns whether they had.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery: &[RecoveryCodeHash],
    ) -> anyhow::Result<bool>;

    /// Removes the user's factor (pending or confirmed) and recovery codes. Returns whether a
    /// confirmed factor was removed.
    /// `events` are recorded with the change, in the same transaction, and only if a
    /// confirmed factor was removed.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn remove_totp(&self, user: UserId, events: &[NewSecurityEvent]) -> anyhow::Result<bool>;

    /// Stores the challenge of a login waiting for its second factor.
    ///
    /// # Errors
    ///
    /// A failure of the storage, including a user that does not exist.
    async fn create_mfa_challenge(&self, challenge: &MfaChallenge) -> anyhow::Result<()>;

    /// The challenge stored under `token_hash`, live or not, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage, or a stored row that does not pass the domain's validation.
    async fn find_mfa_challenge(
        &self,
        token_hash: &SecretHash,
    ) -> anyhow::Result<Option<MfaChallenge>>;

    /// Counts one code tried against the challenge, before the code is checked, if the
    /// challenge is live at `now` (unspent, unexpired, fewer than
    /// [`MfaChallenge::MAX_FAILURES`] codes tried): returns whether it was. One conditional
    /// update, so that of any number of racing calls at most `MAX_FAILURES` pass.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn try_mfa_challenge(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Spends the challenge if it is unspent and unexpired at `now` (the code that spends it
    /// was counted by [`MfaRepository::try_mfa_challenge`]): returns whether it was. Of
    /// concurrent calls, one wins.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn spend_mfa_challenge(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Deletes the challenges that expired before `now`. Returns how many.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn delete_expired_mfa_challenges(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;
}
