//! [`PersonalTokenRepository`]: personal access tokens, found by the hash of the token.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use warden_domain::{
    accounts::{User, UserId},
    crypto::SecretHash,
    events::NewSecurityEvent,
    personal_tokens::{
        NewPersonalToken, PersonalToken, PersonalTokenId, PersonalTokenName, PersonalTokenPage,
        PersonalTokenRepository,
    },
    scope::Scopes,
};

use super::macros::{on_pool, on_writer, write_transaction};
use super::users::{JoinedUserRow, joined_user_columns};
use super::{DbResultExt, Store, stored_time};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    name: String,
    scopes: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<TokenRow> for PersonalToken {
    type Error = anyhow::Error;

    fn try_from(row: TokenRow) -> anyhow::Result<Self> {
        let invalid =
            |what: &str| format!("personal token {} has an invalid stored {what}", row.id);
        Ok(PersonalToken {
            name: PersonalTokenName::new(row.name).with_context(|| invalid("name"))?,
            scopes: Scopes::parse(&row.scopes).with_context(|| invalid("scopes"))?,
            id: PersonalTokenId::new(row.id),
            user_id: UserId::new(row.user_id),
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        })
    }
}

/// A token with its user, from one join.
#[derive(sqlx::FromRow)]
struct TokenUserRow {
    #[sqlx(flatten)]
    token: TokenRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

#[async_trait]
impl PersonalTokenRepository for Store {
    #[tracing::instrument(skip_all, fields(user_id = %token.user_id), err)]
    async fn create_personal_token(
        &self,
        token: &NewPersonalToken,
        max_tokens: u32,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<Option<PersonalToken>> {
        // Times compare as text on SQLite in time order (see `stored_time`).
        const LIVE: &str = "SELECT COUNT(*) FROM personal_tokens \
                            WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2";
        const SQL: &str = "INSERT INTO personal_tokens \
                           (user_id, name, scopes, token_hash, created_at, expires_at) \
                           VALUES ($1, $2, $3, $4, $5, $6) \
                           RETURNING id, user_id, name, scopes, created_at, expires_at, \
                                     last_used_at, revoked_at";
        let created_at = stored_time(token.created_at);
        let lock_user = self.user_locked();
        let row = write_transaction!(self, |tx| {
            // Concurrent creations for one user queue here, so that each counts the tokens the
            // one before it left (see `Store::user_locked`).
            if let Some(lock_user) = lock_user {
                sqlx::query(lock_user)
                    .bind(token.user_id.get())
                    .execute(&mut *tx)
                    .await?;
            }
            let live: i64 = sqlx::query_scalar(LIVE)
                .bind(token.user_id.get())
                .bind(created_at)
                .fetch_one(&mut *tx)
                .await?;
            if live >= i64::from(max_tokens) {
                return Ok(None);
            }
            let row = sqlx::query_as::<_, TokenRow>(SQL)
                .bind(token.user_id.get())
                .bind(token.name.as_str())
                .bind(token.scopes.to_string())
                .bind(token.hash.as_str())
                .bind(created_at)
                .bind(stored_time(token.expires_at))
                .fetch_one(&mut *tx)
                .await?;
            tx.record(events);
            Some(row)
        })
        .db_context("cannot insert a personal token")?;
        row.map(PersonalToken::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn list_personal_tokens(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        page: PersonalTokenPage,
    ) -> anyhow::Result<Vec<PersonalToken>> {
        // Times compare as text on SQLite in time order (see `stored_time`).
        const SQL: &str = "SELECT id, user_id, name, scopes, created_at, expires_at, \
                                  last_used_at, revoked_at \
                           FROM personal_tokens \
                           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                             AND ($3 IS NULL OR id < $3) \
                           ORDER BY id DESC LIMIT $4";
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, TokenRow>(SQL)
                .bind(user.get())
                .bind(stored_time(now))
                .bind(page.before.map(PersonalTokenId::get))
                .bind(i64::from(page.limit.get()))
                .fetch_all(pool)
                .await
        })
        .db_context("cannot list personal tokens")?;
        rows.into_iter().map(PersonalToken::try_from).collect()
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_personal_tokens_ended_before(
        &self,
        cutoff: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        super::retention::delete_ended_personal_tokens(self, cutoff).await
    }

    #[tracing::instrument(skip_all, err)]
    async fn find_personal_token(
        &self,
        hash: &SecretHash,
    ) -> anyhow::Result<Option<(PersonalToken, User)>> {
        const SQL: &str = concat!(
            "SELECT t.id, t.user_id, t.name, t.scopes, t.created_at, \
             t.expires_at, t.last_used_at, t.revoked_at, ",
            joined_user_columns!(),
            " FROM personal_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1"
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, TokenUserRow>(SQL)
                .bind(hash.as_str())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read a personal token")?;
        row.map(|row| {
            let user = row.user.into_user(row.token.user_id)?;
            Ok((PersonalToken::try_from(row.token)?, user))
        })
        .transpose()
    }

    #[tracing::instrument(skip(self, events), err)]
    async fn revoke_personal_token(
        &self,
        user: UserId,
        id: PersonalTokenId,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const SQL: &str = "UPDATE personal_tokens SET revoked_at = $3 \
                           WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL";
        let revoked = write_transaction!(self, |tx| {
            let revoked = sqlx::query(SQL)
                .bind(user.get())
                .bind(id.get())
                .bind(stored_time(at))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            tx.record_if(revoked, events);
            revoked
        })
        .db_context("cannot revoke a personal token")?;
        Ok(revoked)
    }

    #[tracing::instrument(skip(self), err)]
    async fn record_personal_token_use(
        &self,
        id: PersonalTokenId,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        const SQL: &str = "UPDATE personal_tokens SET last_used_at = $2 \
                           WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
        on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .bind(stored_time(at))
                .execute(pool)
                .await
                .map(drop)
        })
        .db_context("cannot record a personal token's use")?;
        Ok(())
    }
}
