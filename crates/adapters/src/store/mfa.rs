//! [`MfaRepository`]: TOTP factors, recovery codes and the challenges of two-step logins.
//! Every "once" of contract section 10 (a code step, a recovery code, an `mfa_token`) is a
//! conditional `UPDATE`: of racing requests the database lets exactly one match.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use warden_domain::{
    accounts::UserId,
    crypto::SecretHash,
    events::NewSecurityEvent,
    mfa::{MfaChallenge, MfaRepository, RecoveryCodeHash, SealedTotpSecret, TotpFactor},
    scope::Scopes,
    sessions::ClientId,
};

use super::macros::{on_pool, on_writer, write_transaction};
use super::{DbResultExt, Store, stored_time};

#[derive(sqlx::FromRow)]
struct FactorRow {
    user_id: i64,
    secret: String,
    confirmed_at: Option<DateTime<Utc>>,
    last_used_step: Option<i64>,
}

impl From<FactorRow> for TotpFactor {
    fn from(row: FactorRow) -> Self {
        TotpFactor {
            user_id: UserId::new(row.user_id),
            secret: SealedTotpSecret::new(row.secret),
            confirmed_at: row.confirmed_at,
            last_used_step: row.last_used_step,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    token_hash: String,
    user_id: i64,
    scopes: String,
    client_id: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    failures: i32,
    spent_at: Option<DateTime<Utc>>,
}

impl TryFrom<ChallengeRow> for MfaChallenge {
    type Error = anyhow::Error;

    fn try_from(row: ChallengeRow) -> anyhow::Result<Self> {
        let invalid = |what: &str| format!("an mfa challenge has an invalid stored {what}");
        Ok(MfaChallenge {
            scopes: Scopes::parse(&row.scopes).with_context(|| invalid("scopes"))?,
            client_id: ClientId::new(&row.client_id).with_context(|| invalid("client_id"))?,
            failures: u32::try_from(row.failures).with_context(|| invalid("failures"))?,
            token_hash: SecretHash::new(row.token_hash),
            user_id: UserId::new(row.user_id),
            created_at: row.created_at,
            expires_at: row.expires_at,
            spent_at: row.spent_at,
        })
    }
}

const DELETE_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";

/// Replaces `$user`'s recovery codes with `$recovery` through `$tx`, in the caller's async block
/// (whose error type is `sqlx::Error`).
macro_rules! replace_recovery_codes {
    ($tx:ident, $user:expr, $recovery:expr) => {
        sqlx::query(DELETE_RECOVERY_CODES)
            .bind($user.get())
            .execute(&mut *$tx)
            .await?;
        for hash in $recovery {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind($user.get())
                .bind(hash.as_str())
                .execute(&mut *$tx)
                .await?;
        }
    };
}

#[async_trait]
impl MfaRepository for Store {
    #[tracing::instrument(skip(self), err)]
    async fn find_totp(&self, user: UserId) -> anyhow::Result<Option<TotpFactor>> {
        const SQL: &str = "SELECT user_id, secret, confirmed_at, last_used_step \
                           FROM totp_factors WHERE user_id = $1";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, FactorRow>(SQL)
                .bind(user.get())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read a TOTP factor")?;
        Ok(row.map(TotpFactor::from))
    }

    #[tracing::instrument(skip(self, secret), err)]
    async fn save_pending_totp(
        &self,
        user: UserId,
        secret: &SealedTotpSecret,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        // Replaces a pending factor, never a confirmed one.
        const SQL: &str = "INSERT INTO totp_factors (user_id, secret, created_at) \
                           VALUES ($1, $2, $3) \
                           ON CONFLICT (user_id) DO UPDATE \
                           SET secret = excluded.secret, created_at = excluded.created_at, \
                               last_used_step = NULL \
                           WHERE totp_factors.confirmed_at IS NULL";
        let saved = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(secret.as_str())
                .bind(stored_time(at))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot save a TOTP factor")?;
        Ok(saved > 0)
    }

    #[tracing::instrument(skip(self, recovery, events), err)]
    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        recovery: &[RecoveryCodeHash],
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const CONFIRM: &str = "UPDATE totp_factors SET confirmed_at = $3, last_used_step = $2 \
                               WHERE user_id = $1 AND confirmed_at IS NULL \
                                 AND (last_used_step IS NULL OR last_used_step < $2)";
        let confirmed = write_transaction!(self, |tx| {
            let confirmed = sqlx::query(CONFIRM)
                .bind(user.get())
                .bind(step)
                .bind(stored_time(at))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if confirmed {
                replace_recovery_codes!(tx, user, recovery);
                tx.record(events);
            }
            confirmed
        })
        .db_context("cannot confirm a TOTP factor")?;
        Ok(confirmed)
    }

    #[tracing::instrument(skip(self), err)]
    async fn use_totp_step(&self, user: UserId, step: i64) -> anyhow::Result<bool> {
        const SQL: &str = "UPDATE totp_factors SET last_used_step = $2 \
                           WHERE user_id = $1 AND confirmed_at IS NOT NULL \
                             AND (last_used_step IS NULL OR last_used_step < $2)";
        let used = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(step)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot use a TOTP code")?;
        Ok(used > 0)
    }

    #[tracing::instrument(skip(self, code, events), err)]
    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const SQL: &str = "UPDATE recovery_codes SET used_at = $3 \
                           WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
        let used = write_transaction!(self, |tx| {
            let used = sqlx::query(SQL)
                .bind(user.get())
                .bind(code.as_str())
                .bind(stored_time(at))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            tx.record_if(used, events);
            used
        })
        .db_context("cannot use a recovery code")?;
        Ok(used)
    }

    #[tracing::instrument(skip(self, recovery), err)]
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery: &[RecoveryCodeHash],
    ) -> anyhow::Result<bool> {
        const CONFIRMED: &str =
            "SELECT COUNT(*) FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL";
        let replaced = write_transaction!(self, |tx| {
            let confirmed: i64 = sqlx::query_scalar(CONFIRMED)
                .bind(user.get())
                .fetch_one(&mut *tx)
                .await?;
            if confirmed == 0 {
                return Ok(false);
            }
            replace_recovery_codes!(tx, user, recovery);
            true
        })
        .db_context("cannot replace recovery codes")?;
        Ok(replaced)
    }

    #[tracing::instrument(skip(self, events), err)]
    async fn remove_totp(&self, user: UserId, events: &[NewSecurityEvent]) -> anyhow::Result<bool> {
        const FACTOR: &str = "DELETE FROM totp_factors WHERE user_id = $1 RETURNING confirmed_at";
        // The pending factor and the codes go either way; the event only with a confirmed one.
        let removed = write_transaction!(self, |tx| {
            let confirmed_at: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(FACTOR)
                .bind(user.get())
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(DELETE_RECOVERY_CODES)
                .bind(user.get())
                .execute(&mut *tx)
                .await?;
            let removed = matches!(confirmed_at, Some(Some(_)));
            tx.record_if(removed, events);
            removed
        })
        .db_context("cannot remove a TOTP factor")?;
        Ok(removed)
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_mfa_challenge(&self, challenge: &MfaChallenge) -> anyhow::Result<()> {
        const SQL: &str = "INSERT INTO mfa_challenges \
                           (token_hash, user_id, scopes, client_id, created_at, expires_at, \
                            failures, spent_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let failures = i32::try_from(challenge.failures).context("failures out of range")?;
        on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(challenge.token_hash.as_str())
                .bind(challenge.user_id.get())
                .bind(challenge.scopes.to_string())
                .bind(challenge.client_id.as_str())
                .bind(stored_time(challenge.created_at))
                .bind(stored_time(challenge.expires_at))
                .bind(failures)
                .bind(challenge.spent_at.map(stored_time))
                .execute(pool)
                .await
                .map(drop)
        })
        .db_context("cannot store an mfa challenge")?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn find_mfa_challenge(
        &self,
        token_hash: &SecretHash,
    ) -> anyhow::Result<Option<MfaChallenge>> {
        const SQL: &str = "SELECT token_hash, user_id, scopes, client_id, created_at, \
                                  expires_at, failures, spent_at \
                           FROM mfa_challenges WHERE token_hash = $1";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, ChallengeRow>(SQL)
                .bind(token_hash.as_str())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read an mfa challenge")?;
        row.map(MfaChallenge::try_from).transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn try_mfa_challenge(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        // The WHERE is the check and the SET the count, in one statement: racing tries queue
        // on the row (PostgreSQL re-checks the WHERE on the row a winner left; SQLite has one
        // writer), so no more than MAX_FAILURES ever pass. Times compare as text on SQLite in
        // time order (see `stored_time`).
        const SQL: &str = "UPDATE mfa_challenges SET failures = failures + 1 \
                           WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2 \
                             AND failures < $3";
        let max_failures =
            i32::try_from(MfaChallenge::MAX_FAILURES).context("failures out of range")?;
        let tried = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(token_hash.as_str())
                .bind(stored_time(now))
                .bind(max_failures)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot count a code tried")?;
        Ok(tried > 0)
    }

    #[tracing::instrument(skip_all, err)]
    async fn spend_mfa_challenge(
        &self,
        token_hash: &SecretHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        // The code that spends it was counted by `try_mfa_challenge`, among the MAX_FAILURES.
        const SQL: &str = "UPDATE mfa_challenges SET spent_at = $2 \
                           WHERE token_hash = $1 AND spent_at IS NULL AND expires_at > $2";
        let spent = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(token_hash.as_str())
                .bind(stored_time(now))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot spend an mfa challenge")?;
        Ok(spent > 0)
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_expired_mfa_challenges(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        const SQL: &str = "DELETE FROM mfa_challenges WHERE expires_at < $1";
        let deleted = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(stored_time(now))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete expired mfa challenges")?;
        Ok(deleted)
    }
}
