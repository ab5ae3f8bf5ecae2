//! [`SessionRepository`]: login sessions and their single-use refresh tokens.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use warden_domain::{
    accounts::{User, UserId},
    crypto::SecretHash,
    events::{EventContext, NewSecurityEvent, SecurityEventKind},
    scope::Scopes,
    sessions::{
        AuthMethods, ClientId, NewRefreshToken, NewSession, Rotation, Session, SessionId,
        SessionOrigin, SessionPage, SessionRepository,
    },
};

use super::macros::{on_pool, on_writer, write_transaction};
use super::users::{JoinedUserRow, joined_user_columns};
use super::{DbResultExt, Store, stored_time};

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    scopes: String,
    client_id: String,
    user_agent: Option<String>,
    ip_address: Option<String>,
    amr: String,
    last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<SessionRow> for Session {
    type Error = anyhow::Error;

    fn try_from(row: SessionRow) -> anyhow::Result<Self> {
        let invalid = |what: &str| format!("session {} has an invalid stored {what}", row.id);
        let origin = SessionOrigin {
            client_id: ClientId::new(&row.client_id).with_context(|| invalid("client_id"))?,
            user_agent: row.user_agent,
            ip_address: row
                .ip_address
                .as_deref()
                .map(str::parse)
                .transpose()
                .with_context(|| invalid("ip_address"))?,
            auth_methods: AuthMethods::from_stored(&row.amr).with_context(|| invalid("amr"))?,
        };
        Ok(Session {
            scopes: Scopes::parse(&row.scopes).with_context(|| invalid("scopes"))?,
            id: SessionId::from_uuid(row.id),
            user_id: UserId::new(row.user_id),
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at.unwrap_or(row.created_at),
            origin,
        })
    }
}

/// A session with its user, from one join.
#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    user: JoinedUserRow,
}

/// A session's columns, as [`SessionRow`] reads them.
macro_rules! session_columns {
    () => {
        "id, user_id, created_at, expires_at, revoked_at, scopes, client_id, user_agent, \
         ip_address, amr, last_used_at"
    };
    ($alias:literal) => {
        concat!(
            $alias,
            ".id, ",
            $alias,
            ".user_id, ",
            $alias,
            ".created_at, ",
            $alias,
            ".expires_at, ",
            $alias,
            ".revoked_at, ",
            $alias,
            ".scopes, ",
            $alias,
            ".client_id, ",
            $alias,
            ".user_agent, ",
            $alias,
            ".ip_address, ",
            $alias,
            ".amr, ",
            $alias,
            ".last_used_at"
        )
    };
}

const SESSION_COLUMNS_BY_ID: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE id = $1"
);

#[async_trait]
impl SessionRepository for Store {
    #[tracing::instrument(skip_all, fields(user_id = %new_session.user_id), err)]
    async fn create_session(
        &self,
        new_session: &NewSession,
        refresh_token: &NewRefreshToken,
        max_sessions: u32,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<Session> {
        const SESSION: &str = concat!(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, scopes, client_id, \
             user_agent, ip_address, amr, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $3) RETURNING ",
            session_columns!()
        );
        const REFRESH: &str = "INSERT INTO refresh_tokens \
                               (token_hash, session_id, created_at, expires_at) \
                               VALUES ($1, $2, $3, $4)";
        // Ends the user's active sessions past the `$3` most recently used (`$4`: no limit,
        // which SQLite needs before an OFFSET), so that with the new one they hold
        // `max_sessions`.
        const END_LEAST_RECENTLY_USED: &str = "UPDATE sessions SET revoked_at = $2 \
             WHERE id IN (SELECT id FROM sessions \
                          WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
                          ORDER BY COALESCE(last_used_at, created_at) DESC, created_at DESC, id \
                          LIMIT $4 OFFSET $3) \
             RETURNING id";
        let scopes = new_session.scopes.to_string();
        let created_at = stored_time(new_session.created_at);
        let lock_user = self.user_locked();
        let row = write_transaction!(self, |tx| {
            // Concurrent logins of one user queue here, so that each counts the sessions the
            // one before it left.
            if let Some(lock_user) = lock_user {
                sqlx::query(lock_user)
                    .bind(new_session.user_id.get())
                    .execute(&mut *tx)
                    .await?;
            }
            let ended: Vec<Uuid> = sqlx::query_scalar(END_LEAST_RECENTLY_USED)
                .bind(new_session.user_id.get())
                .bind(created_at)
                .bind(i64::from(max_sessions.saturating_sub(1)))
                .bind(i64::MAX)
                .fetch_all(&mut *tx)
                .await?;
            let row = sqlx::query_as::<_, SessionRow>(SESSION)
                .bind(new_session.id.as_uuid())
                .bind(new_session.user_id.get())
                .bind(created_at)
                .bind(stored_time(new_session.expires_at))
                .bind(&scopes)
                .bind(new_session.origin.client_id.as_str())
                .bind(new_session.origin.user_agent.as_deref())
                .bind(new_session.origin.ip_address.map(|ip| ip.to_string()))
                .bind(new_session.origin.auth_methods.as_stored())
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(REFRESH)
                .bind(refresh_token.hash.as_str())
                .bind(new_session.id.as_uuid())
                .bind(created_at)
                .bind(stored_time(refresh_token.expires_at))
                .execute(&mut *tx)
                .await?;
            tx.record(events);
            tx.record(&ended_events(new_session, &ended));
            row
        })
        .db_context("cannot insert session")?;
        Session::try_from(row)
    }

    #[tracing::instrument(skip(self), err)]
    async fn find_session(&self, id: SessionId) -> anyhow::Result<Option<Session>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRow>(SESSION_COLUMNS_BY_ID)
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read session")?;
        row.map(Session::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn find_session_with_user(
        &self,
        id: SessionId,
    ) -> anyhow::Result<Option<(Session, User)>> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!("s"),
            ", ",
            joined_user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionUserRow>(SQL)
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read session")?;
        row.map(|row| {
            let user = row.user.into_user(row.session.user_id)?;
            Ok((Session::try_from(row.session)?, user))
        })
        .transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn find_session_by_refresh_token(
        &self,
        presented: &SecretHash,
    ) -> anyhow::Result<Option<Session>> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!("s"),
            " FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id \
             WHERE r.token_hash = $1"
        );
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRow>(SQL)
                .bind(presented.as_str())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read session by refresh token")?;
        row.map(Session::try_from).transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn rotate_refresh_token(
        &self,
        presented: &SecretHash,
        next: &NewRefreshToken,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Rotation> {
        // The conditional UPDATE is the lock: of concurrent transactions spending one token,
        // the database lets exactly one match `spent_at IS NULL`; the others, once it commits,
        // match nothing and find the token spent.
        const SPEND: &str = "UPDATE refresh_tokens SET spent_at = $2 \
                             WHERE token_hash = $1 AND spent_at IS NULL \
                             RETURNING session_id, expires_at";
        const NEXT: &str = "INSERT INTO refresh_tokens \
                            (token_hash, session_id, created_at, expires_at) \
                            VALUES ($1, $2, $3, $4)";
        const SPENT_BEFORE: &str = "SELECT session_id FROM refresh_tokens \
                                    WHERE token_hash = $1 AND spent_at IS NOT NULL";
        // A refresh is a use of its session (never moved back: see `record_session_use`).
        const USED: &str = "UPDATE sessions SET last_used_at = $2 \
                            WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
        let now = stored_time(now);
        let outcome = write_transaction!(self, |tx| {
            let spent: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(SPEND)
                .bind(presented.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            match spent {
                // An expired token stays as it was: rolling back un-spends it.
                Some((_, expires_at)) if expires_at <= now => {
                    tx.rollback().await?;
                    return Ok(RotationRow::Invalid);
                }
                Some((session_id, _)) => {
                    sqlx::query(USED)
                        .bind(session_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(NEXT)
                        .bind(next.hash.as_str())
                        .bind(session_id)
                        .bind(now)
                        .bind(stored_time(next.expires_at))
                        .execute(&mut *tx)
                        .await?;
                    let session = sqlx::query_as::<_, SessionRow>(SESSION_COLUMNS_BY_ID)
                        .bind(session_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    RotationRow::Rotated(session)
                }
                None => sqlx::query_scalar::<_, Uuid>(SPENT_BEFORE)
                    .bind(presented.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .map_or(RotationRow::Invalid, RotationRow::Replayed),
            }
        })
        .db_context("cannot rotate refresh token")?;
        Ok(match outcome {
            RotationRow::Rotated(row) => Rotation::Rotated(Session::try_from(row)?),
            RotationRow::Replayed(id) => Rotation::Replayed(SessionId::from_uuid(id)),
            RotationRow::Invalid => Rotation::Invalid,
        })
    }

    #[tracing::instrument(skip(self, events), err)]
    async fn revoke_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const SQL: &str =
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
        let revoked = write_transaction!(self, |tx| {
            let revoked = sqlx::query(SQL)
                .bind(id.as_uuid())
                .bind(stored_time(at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.record_if(revoked > 0, events);
            revoked
        })
        .db_context("cannot revoke session")?;
        Ok(revoked > 0)
    }

    #[tracing::instrument(skip(self), err)]
    async fn list_active_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        page: SessionPage,
    ) -> anyhow::Result<Vec<Session>> {
        // Times compare as text on SQLite in time order (see `stored_time`). The page starts
        // after session `$3` in the list's order (created_at descending, then id), and is empty
        // when `$3` names none of the user's sessions.
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!("s"),
            " FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
               AND ($3 IS NULL OR EXISTS (SELECT 1 FROM sessions c \
                    WHERE c.id = $3 AND c.user_id = $1 \
                      AND (s.created_at < c.created_at \
                           OR (s.created_at = c.created_at AND s.id > c.id)))) \
             ORDER BY s.created_at DESC, s.id LIMIT $4"
        );
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRow>(SQL)
                .bind(user.get())
                .bind(stored_time(now))
                .bind(page.before.map(SessionId::as_uuid))
                .bind(i64::from(page.limit.get()))
                .fetch_all(pool)
                .await
        })
        .db_context("cannot list sessions")?;
        rows.into_iter().map(Session::try_from).collect()
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_sessions_ended_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        super::retention::delete_ended_sessions(self, cutoff).await
    }

    #[tracing::instrument(skip(self, events), err)]
    async fn revoke_session_of_user(
        &self,
        user: UserId,
        id: SessionId,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const SQL: &str = "UPDATE sessions SET revoked_at = $3 \
                           WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL \
                             AND expires_at > $3";
        let revoked = write_transaction!(self, |tx| {
            let revoked = sqlx::query(SQL)
                .bind(user.get())
                .bind(id.as_uuid())
                .bind(stored_time(at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.record_if(revoked > 0, events);
            revoked
        })
        .db_context("cannot revoke session")?;
        Ok(revoked > 0)
    }

    #[tracing::instrument(skip(self), err)]
    async fn record_session_use(&self, id: SessionId, at: DateTime<Utc>) -> anyhow::Result<()> {
        const SQL: &str = "UPDATE sessions SET last_used_at = $2 \
                           WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";
        on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.as_uuid())
                .bind(stored_time(at))
                .execute(pool)
                .await
                .map(drop)
        })
        .db_context("cannot record a session's use")?;
        Ok(())
    }

    #[tracing::instrument(skip(self, events), err)]
    async fn revoke_sessions_of_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        at: DateTime<Utc>,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<u64> {
        const SQL: &str = "UPDATE sessions SET revoked_at = $3 \
                           WHERE user_id = $1 AND revoked_at IS NULL \
                             AND ($2 IS NULL OR id <> $2)";
        let revoked = write_transaction!(self, |tx| {
            let revoked = sqlx::query(SQL)
                .bind(user.get())
                .bind(except.map(SessionId::as_uuid))
                .bind(stored_time(at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.record_if(revoked > 0, events);
            revoked
        })
        .db_context("cannot revoke sessions")?;
        Ok(revoked)
    }
}

/// The `session_revoked` events of the sessions a login ended to stay within the account's cap:
/// from the login's origin, about each ended session.
fn ended_events(login: &NewSession, ended: &[Uuid]) -> Vec<NewSecurityEvent> {
    ended
        .iter()
        .map(|id| NewSecurityEvent {
            user_id: login.user_id,
            kind: SecurityEventKind::SessionRevoked,
            at: login.created_at,
            context: EventContext {
                ip_address: login.origin.ip_address,
                user_agent: login.origin.user_agent.clone(),
                session_id: Some(SessionId::from_uuid(*id)),
            },
        })
        .collect()
}

/// [`Rotation`] before its session row is converted.
enum RotationRow {
    Rotated(SessionRow),
    Replayed(Uuid),
    Invalid,
}
