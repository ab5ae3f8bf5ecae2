//! [`MailRepository`]: emailed tokens and the outbox (contract section 12).
//!
//! A token and the mails that carry it are written in one transaction, with the change that
//! causes them (a new account). Spending a token is a conditional `UPDATE`: of racing requests
//! the database lets exactly one match, and the change it allows happens in the same
//! transaction. The outbox is a table that workers take mails from under a lease: on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`, so that instances never wait on each other's rows.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use warden_domain::{
    accounts::{EmailAddress, NewUser, PasswordHash, SaveUserError, User, UserId},
    crypto::SecretHash,
    events::NewSecurityEvent,
    mail::{
        EmailToken, EmailTokenPurpose, MailId, MailKind, MailRepository, MailToken, NewEmailToken,
        OutgoingMail, QueuedMail,
    },
};

use super::macros::{on_pool, on_writer, write_transaction};
use super::users::{INSERT_USER, UserRow, unique_email};
use super::{Backend, DbResultExt, Store, now, stored_time};

const INSERT_TOKEN: &str = "INSERT INTO email_tokens \
     (token_hash, user_id, purpose, email, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const INSERT_MAIL: &str = "INSERT INTO mail_outbox \
     (kind, recipient, token, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)";

/// Spends a live token of `$2`'s for purpose `$3` (`$4` is now). Returns a row if it did.
const SPEND_TOKEN: &str = "UPDATE email_tokens SET used_at = $4 \
     WHERE token_hash = $1 AND user_id = $2 AND purpose = $3 \
       AND used_at IS NULL AND expires_at > $4 \
     RETURNING email";

/// Spends every pending emailed token of user `$1` (`$2` is now): a reset, which proves the
/// mailbox, leaves no other way into the account open, and an email change leaves none to the
/// old address.
pub(super) const SPEND_PENDING_TOKENS: &str = "UPDATE email_tokens SET used_at = $2 \
     WHERE user_id = $1 AND used_at IS NULL";

/// Spends user `$1`'s pending email change and reset tokens (`$2` is now): a password change
/// ends what a thief with an access token or an old password may have asked for.
pub(super) const SPEND_PENDING_CHANGE_AND_RESET_TOKENS: &str = "UPDATE email_tokens SET used_at = $2 \
     WHERE user_id = $1 AND used_at IS NULL AND purpose IN ('email_change', 'password_reset')";

/// Revokes every live personal access token of user `$1` (`$2` is now).
const REVOKE_PERSONAL_TOKENS: &str = "UPDATE personal_tokens SET revoked_at = $2 \
     WHERE user_id = $1 AND revoked_at IS NULL";

/// Spends `$user`'s live token hashed as `$token` for `$purpose` at `$now` through `$tx`, in the
/// caller's async block (whose error type is `sqlx::Error`). Evaluates to the address the token
/// was sent to, if it was live.
macro_rules! spend_token {
    ($tx:ident, $token:expr, $user:expr, $purpose:expr, $now:expr) => {
        sqlx::query_scalar::<_, String>(SPEND_TOKEN)
            .bind($token.as_str())
            .bind($user.get())
            .bind($purpose.as_str())
            .bind($now)
            .fetch_optional(&mut *$tx)
            .await?
    };
}

/// Inserts `$token` for `$user` and each of `$mails` through `$tx`, in the caller's async block
/// (whose error type is `sqlx::Error`).
macro_rules! insert_token_and_mails {
    ($tx:ident, $user:expr, $token:expr, $mails:expr) => {
        sqlx::query(INSERT_TOKEN)
            .bind($token.hash.as_str())
            .bind($user.get())
            .bind($token.purpose.as_str())
            .bind($token.email.as_str())
            .bind(stored_time($token.created_at))
            .bind(stored_time($token.expires_at))
            .execute(&mut *$tx)
            .await?;
        let due = now();
        for mail in $mails {
            sqlx::query(INSERT_MAIL)
                .bind(mail.kind.as_str())
                .bind(mail.to.as_str())
                .bind(mail.token.as_ref().map(MailToken::expose))
                .bind(due)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    user_id: i64,
    purpose: String,
    email: String,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for EmailToken {
    type Error = anyhow::Error;

    fn try_from(row: TokenRow) -> anyhow::Result<Self> {
        Ok(EmailToken {
            user_id: UserId::new(row.user_id),
            purpose: EmailTokenPurpose::parse(&row.purpose).with_context(|| {
                format!("an email token has an unknown purpose {:?}", row.purpose)
            })?,
            email: EmailAddress::new(&row.email)
                .context("an email token has an invalid address")?,
            expires_at: row.expires_at,
            used: row.used_at.is_some(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct MailRow {
    id: i64,
    kind: String,
    recipient: String,
    token: Option<String>,
    attempts: i32,
}

impl TryFrom<MailRow> for QueuedMail {
    type Error = anyhow::Error;

    fn try_from(row: MailRow) -> anyhow::Result<Self> {
        let invalid = |what: &str| format!("mail {} has an invalid stored {what}", row.id);
        Ok(QueuedMail {
            id: MailId::new(row.id),
            mail: OutgoingMail {
                kind: MailKind::parse(&row.kind).with_context(|| invalid("kind"))?,
                to: EmailAddress::new(&row.recipient).with_context(|| invalid("recipient"))?,
                token: row.token.map(MailToken::new),
            },
            attempts: u32::try_from(row.attempts).with_context(|| invalid("attempts"))?,
        })
    }
}

/// Takes the next due mail (`$1` is now) under a lease until `$2`. The outer condition is
/// checked again on the row once it is locked, so that of two racing statements that picked
/// the same row only the first takes it; on PostgreSQL the others skip the locked row instead of
/// waiting for it. SQLite has one writer, and no `FOR UPDATE`.
macro_rules! claim_mail {
    ($lock:literal) => {
        concat!(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2 \
             WHERE next_attempt_at <= $1 AND id = (SELECT id FROM mail_outbox \
               WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT 1",
            $lock,
            ") RETURNING id, kind, recipient, token, attempts"
        )
    };
}

#[async_trait]
impl MailRepository for Store {
    #[tracing::instrument(skip_all, err)]
    async fn create_user_with_mail(
        &self,
        new_user: &NewUser,
        token: &NewEmailToken,
        mail: &OutgoingMail,
    ) -> Result<User, SaveUserError> {
        let email = new_user.email.as_str();
        let email_key = new_user.email.normalized();
        let created_at = now();
        let inserted = write_transaction!(self, |tx| {
            let row = sqlx::query_as::<_, UserRow>(INSERT_USER)
                .bind(email)
                .bind(&email_key)
                .bind(new_user.password_hash.as_str())
                .bind(new_user.is_admin)
                .bind(new_user.email_verified)
                .bind(created_at)
                .fetch_one(&mut *tx)
                .await?;
            let user = UserId::new(row.id);
            insert_token_and_mails!(tx, user, token, std::slice::from_ref(mail));
            row
        });
        let row = unique_email(inserted, email, "cannot insert user")?;
        self.mail_queued.notify_one();
        Ok(User::try_from(row)?)
    }

    #[tracing::instrument(skip(self, token, mails), err)]
    async fn issue_email_token(
        &self,
        user: UserId,
        token: &NewEmailToken,
        mails: &[OutgoingMail],
    ) -> anyhow::Result<()> {
        write_transaction!(self, |tx| {
            insert_token_and_mails!(tx, user, token, mails);
        })
        .db_context("cannot issue an email token")?;
        self.mail_queued.notify_one();
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn find_email_token(&self, hash: &SecretHash) -> anyhow::Result<Option<EmailToken>> {
        const SQL: &str = "SELECT user_id, purpose, email, expires_at, used_at \
                           FROM email_tokens WHERE token_hash = $1";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, TokenRow>(SQL)
                .bind(hash.as_str())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read an email token")?;
        row.map(EmailToken::try_from).transpose()
    }

    #[tracing::instrument(skip(self, token, hash, events), err)]
    async fn reset_password(
        &self,
        token: &SecretHash,
        user: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        // The address counts as verified only if it is still the one the token was sent to.
        const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, \
                                    email_verified = (email_verified OR email_key = $3) \
                                    WHERE id = $1";
        const END_SESSIONS: &str = "UPDATE sessions SET revoked_at = $2 \
                                    WHERE user_id = $1 AND revoked_at IS NULL";
        let now = stored_time(now);
        let purpose = EmailTokenPurpose::PasswordReset;
        let reset = write_transaction!(self, |tx| {
            let Some(email) = spend_token!(tx, token, user, purpose, now) else {
                return Ok(None);
            };
            sqlx::query(SET_PASSWORD)
                .bind(user.get())
                .bind(hash.as_str())
                .bind(email.to_lowercase())
                .execute(&mut *tx)
                .await?;
            // Recovery closes every other way in: mailed tokens, sessions, personal tokens.
            for sql in [SPEND_PENDING_TOKENS, END_SESSIONS, REVOKE_PERSONAL_TOKENS] {
                sqlx::query(sql)
                    .bind(user.get())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.record(events);
            Some(())
        })
        .db_context("cannot reset a password")?;
        Ok(reset.is_some())
    }

    #[tracing::instrument(skip(self, token, email, events), err)]
    async fn verify_email(
        &self,
        token: &SecretHash,
        user: UserId,
        email: &EmailAddress,
        now: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const VERIFY: &str = "UPDATE users SET email_verified = TRUE \
                              WHERE id = $1 AND email_key = $2";
        let now = stored_time(now);
        let verified = write_transaction!(self, |tx| {
            let changed = sqlx::query(VERIFY)
                .bind(user.get())
                .bind(email.normalized())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // The token is spent only if the address it was sent to is still the account's;
            // otherwise the verification is rolled back too.
            if changed == 0
                || spend_token!(tx, token, user, EmailTokenPurpose::EmailVerification, now)
                    .is_none()
            {
                return Ok(None);
            }
            tx.record(events);
            Some(())
        })
        .db_context("cannot verify an email address")?;
        Ok(verified.is_some())
    }

    #[tracing::instrument(skip(self, token, email, events), err)]
    async fn change_email_confirmed(
        &self,
        token: &SecretHash,
        user: UserId,
        email: &EmailAddress,
        now: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> Result<bool, SaveUserError> {
        const CHANGE: &str = "UPDATE users SET email = $2, email_key = $3, email_verified = TRUE \
                              WHERE id = $1";
        let now = stored_time(now);
        let changed = write_transaction!(self, |tx| {
            if spend_token!(tx, token, user, EmailTokenPurpose::EmailChange, now).is_none() {
                return Ok(None);
            }
            // A unique violation here rolls back the spending too: the token stays live.
            let changed = sqlx::query(CHANGE)
                .bind(user.get())
                .bind(email.as_str())
                .bind(email.normalized())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 0 {
                return Ok(None);
            }
            // Tokens mailed to the old address (and other pending changes) end with it.
            sqlx::query(SPEND_PENDING_TOKENS)
                .bind(user.get())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.record(events);
            Some(())
        });
        let changed = unique_email(changed, email.as_str(), "cannot change an email address")?;
        Ok(changed.is_some())
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_expired_email_tokens(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        const SQL: &str = "DELETE FROM email_tokens WHERE expires_at < $1";
        on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(stored_time(now))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete expired email tokens")
    }

    #[tracing::instrument(skip(self), err)]
    async fn claim_mail(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> anyhow::Result<Option<QueuedMail>> {
        let sql = match self.backend() {
            Backend::Postgres => claim_mail!(" FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => claim_mail!(""),
        };
        let row = on_writer!(self, |pool| {
            sqlx::query_as::<_, MailRow>(sql)
                .bind(stored_time(now))
                .bind(stored_time(lease_until))
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot take a mail from the outbox")?;
        row.map(QueuedMail::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn remove_mail(&self, id: MailId) -> anyhow::Result<()> {
        const SQL: &str = "DELETE FROM mail_outbox WHERE id = $1";
        on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .db_context("cannot remove a mail from the outbox")?;
        Ok(())
    }

    #[tracing::instrument(skip(self), err)]
    async fn retry_mail(&self, id: MailId, at: DateTime<Utc>) -> anyhow::Result<()> {
        const SQL: &str = "UPDATE mail_outbox SET next_attempt_at = $2 WHERE id = $1";
        on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .bind(stored_time(at))
                .execute(pool)
                .await
                .map(|_| ())
        })
        .db_context("cannot reschedule a mail")?;
        Ok(())
    }
}
