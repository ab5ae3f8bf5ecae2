//! The ports of the account side: the security event log (contract section 11), second
//! factors (section 10) and personal access tokens (section 13).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    EventQuery, MfaChallenge, NewPersonalToken, NewSecurityEvent, PersonalToken, PersonalTokenId,
    PersonalTokenPage, RecoveryCodeHash, RecoveryCodes, SealedTotpSecret, SecretHash,
    SecurityEvent, TotpEnrolment, TotpFactor, TotpSecret, User, UserId,
};

/// Stores the security event log (contract section 11). Events that record a change are stored
/// by the method that makes the change; this port stores those that change nothing else (a
/// refused login), reads them, and forgets old ones.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SecurityEventRepository: Send + Sync + 'static {
    /// Records `events`, all or none.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient), including a user id
    /// that does not exist; then nothing is stored.
    async fn record_events(&self, events: &[NewSecurityEvent]) -> anyhow::Result<()>;

    /// Records `events` without waiting: the write happens after the call returns, and its
    /// failure is logged, not returned. For events whose write would tell an observer
    /// something by its time: a refused login of an existing account must take as long to
    /// answer as one of an unknown account, which has no log to write to.
    fn record_events_detached(&self, events: Vec<NewSecurityEvent>);

    /// The events `query` selects, newest first.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient), or a stored row that
    /// does not pass the domain's validation.
    async fn list_events(&self, query: &EventQuery) -> anyhow::Result<Vec<SecurityEvent>>;

    /// Deletes the events from before `cutoff`. Returns how many.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
    async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// Stores second factors (contract section 10): TOTP factors, recovery codes, and the
/// challenges of logins waiting for their second step.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MfaRepository: Send + Sync + 'static {
    /// The user's TOTP factor, pending or confirmed, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
    async fn use_totp_step(&self, user: UserId, step: i64) -> anyhow::Result<bool>;

    /// Spends the user's unused recovery code hashed as `code`: returns whether there was one.
    /// Of concurrent calls with one code, one wins.
    /// `events` are recorded with the change, in the same transaction, and only if it
    /// happened.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
    async fn spend_mfa_challenge(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Deletes the challenges that expired before `now`. Returns how many.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
    async fn delete_expired_mfa_challenges(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew either way) and
/// recovery codes: making secrets, sealing them for storage, and checking codes.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TotpCodec: Send + Sync + 'static {
    /// A new random secret (160 bits, as RFC 4226 recommends).
    fn generate_secret(&self) -> TotpSecret;

    /// `secret` encrypted for storage.
    ///
    /// # Errors
    ///
    /// Encryption failed: a bug.
    fn seal(&self, secret: &TotpSecret) -> anyhow::Result<SealedTotpSecret>;

    /// The secret `sealed` holds.
    ///
    /// # Errors
    ///
    /// It was sealed with another key, or is corrupt.
    fn open(&self, sealed: &SealedTotpSecret) -> anyhow::Result<TotpSecret>;

    /// What an authenticator app needs: the base32 secret, the `otpauth://` URI (issuer
    /// `Warden`, account `account`) and its QR code as SVG.
    ///
    /// # Errors
    ///
    /// The URI or the QR code could not be made: a bug.
    fn enrolment(&self, secret: &TotpSecret, account: &str) -> anyhow::Result<TotpEnrolment>;

    /// The time step (seconds since the epoch / 30) `code` belongs to, if it is a valid code of
    /// `secret` at `now`, give or take one step.
    fn matching_step(&self, secret: &TotpSecret, code: &str, now: DateTime<Utc>) -> Option<i64>;

    /// A new set of [`RecoveryCodes::COUNT`] recovery codes (80 random bits each) with their
    /// hashes.
    fn generate_recovery_codes(&self) -> RecoveryCodes;

    /// The hash of a recovery code as a user types it (case, spaces and dashes do not matter).
    fn hash_recovery_code(&self, code: &str) -> RecoveryCodeHash;
}

/// Stores personal access tokens (contract section 13).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
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
    /// A failure of the storage (marked [`Unavailable`](super::Unavailable) when transient).
    async fn record_personal_token_use(
        &self,
        id: PersonalTokenId,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()>;
}
