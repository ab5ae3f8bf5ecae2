//! [`UserRepository`]: accounts, unique by their lower-cased email.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use warden_domain::{
    accounts::{
        EmailAddress, NewUser, PasswordHash, SaveUserError, User, UserChangeError, UserCredentials,
        UserFlags, UserId, UserRepository,
    },
    events::NewSecurityEvent,
    posts::Page,
};

use super::macros::{on_pool, on_writer, write_transaction};
use super::{Backend, DbResultExt, Store, count_to_i64, db_error, now};

/// Stores a new user (`$1` email, `$2` its key, `$3` password hash, `$4` is_admin, `$5`
/// email_verified, `$6` created_at) and returns its row.
pub(super) const INSERT_USER: &str = "INSERT INTO users \
     (email, email_key, password_hash, is_admin, email_verified, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     RETURNING id, email, is_active, is_admin, email_verified, created_at";

/// Whether user `$id` is the only active admin, read with `$admins`
/// ([`Store::active_admins_locked`]) in the transaction `$tx` that is about to take their admin
/// away (in an async block whose error type is `sqlx::Error`).
macro_rules! is_last_admin {
    ($tx:ident, $admins:expr, $id:expr) => {{
        let ids: Vec<i64> = sqlx::query_scalar($admins).fetch_all(&mut *$tx).await?;
        ids == [$id.get()]
    }};
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: i64,
    pub(super) email: String,
    pub(super) is_active: bool,
    pub(super) is_admin: bool,
    pub(super) email_verified: bool,
    pub(super) created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = anyhow::Error;

    /// Stored rows go through the same validation as user input: a row that would not pass it
    /// is a bug or a corruption, reported rather than served.
    fn try_from(row: UserRow) -> anyhow::Result<Self> {
        Ok(User {
            id: UserId::new(row.id),
            email: EmailAddress::new(&row.email)
                .with_context(|| format!("user {} has an invalid stored email", row.id))?,
            created_at: row.created_at,
            is_active: row.is_active,
            is_admin: row.is_admin,
            email_verified: row.email_verified,
        })
    }
}

/// The columns of user `u` joined to what they own (a session, a personal token, a post), as
/// [`JoinedUserRow`] reads them. A macro, not a const, so that `concat!` can build whole queries
/// from it.
macro_rules! joined_user_columns {
    () => {
        "u.email AS user_email, u.is_active AS user_is_active, \
         u.is_admin AS user_is_admin, u.email_verified AS user_email_verified, \
         u.created_at AS user_created_at"
    };
}
pub(super) use joined_user_columns;

/// The user joined to a row they own, from [`joined_user_columns!`]; their id is the row's own
/// (`user_id`, `owner_id`).
#[derive(sqlx::FromRow)]
pub(super) struct JoinedUserRow {
    user_email: String,
    user_is_active: bool,
    user_is_admin: bool,
    user_email_verified: bool,
    user_created_at: DateTime<Utc>,
}

impl JoinedUserRow {
    /// User `id`, validated as [`UserRow`]s are.
    pub(super) fn into_user(self, id: i64) -> anyhow::Result<User> {
        User::try_from(UserRow {
            id,
            email: self.user_email,
            is_active: self.user_is_active,
            is_admin: self.user_is_admin,
            email_verified: self.user_email_verified,
            created_at: self.user_created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[async_trait]
impl UserRepository for Store {
    #[tracing::instrument(skip_all, err)]
    async fn create_user(&self, new_user: &NewUser) -> Result<User, SaveUserError> {
        const SQL: &str = INSERT_USER;
        let email = new_user.email.as_str();
        let email_key = new_user.email.normalized();
        let hash = new_user.password_hash.as_str();
        let created_at = now();
        let inserted = on_writer!(self, |pool| {
            sqlx::query_as::<_, UserRow>(SQL)
                .bind(email)
                .bind(&email_key)
                .bind(hash)
                .bind(new_user.is_admin)
                .bind(new_user.email_verified)
                .bind(created_at)
                .fetch_one(pool)
                .await
        });
        Ok(User::try_from(unique_email(
            inserted,
            email,
            "cannot insert user",
        )?)?)
    }

    #[tracing::instrument(skip(self), err)]
    async fn find_user(&self, id: UserId) -> anyhow::Result<Option<User>> {
        const SQL: &str = "SELECT id, email, is_active, is_admin, email_verified, created_at \
                           FROM users WHERE id = $1";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(SQL)
                .bind(id.get())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read user")?;
        row.map(User::try_from).transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn find_credentials_by_email(
        &self,
        email: &EmailAddress,
    ) -> anyhow::Result<Option<UserCredentials>> {
        const SQL: &str = "SELECT id, email, is_active, is_admin, email_verified, created_at, password_hash \
                           FROM users WHERE email_key = $1";
        let email_key = email.normalized();
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, CredentialsRow>(SQL)
                .bind(&email_key)
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read user credentials")?;
        row.map(UserCredentials::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn find_credentials_by_id(&self, id: UserId) -> anyhow::Result<Option<UserCredentials>> {
        const SQL: &str = "SELECT id, email, is_active, is_admin, email_verified, created_at, password_hash \
                           FROM users WHERE id = $1";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, CredentialsRow>(SQL)
                .bind(id.get())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read user credentials")?;
        row.map(UserCredentials::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn list_users(&self, page: Page) -> anyhow::Result<Vec<User>> {
        const SQL: &str = "SELECT id, email, is_active, is_admin, email_verified, created_at \
                           FROM users ORDER BY id LIMIT $1 OFFSET $2";
        let skip = count_to_i64(page.skip())?;
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(SQL)
                .bind(i64::from(page.limit()))
                .bind(skip)
                .fetch_all(pool)
                .await
        })
        .db_context("cannot list users")?;
        rows.into_iter().map(User::try_from).collect()
    }

    #[tracing::instrument(skip(self, email, events), err)]
    async fn update_email(
        &self,
        id: UserId,
        email: &EmailAddress,
        events: &[NewSecurityEvent],
    ) -> Result<Option<User>, SaveUserError> {
        // A change of address unconfirmed by mail leaves it unverified, unless only its case
        // changed (the same mailbox).
        const SQL: &str = "UPDATE users SET email = $2, \
                               email_verified = (email_verified AND email_key = $3), \
                               email_key = $3 WHERE id = $1 \
                           RETURNING id, email, is_active, is_admin, email_verified, created_at";
        let email_key = email.normalized();
        let updated = write_transaction!(self, |tx| {
            let Some(row) = sqlx::query_as::<_, UserRow>(SQL)
                .bind(id.get())
                .bind(email.as_str())
                .bind(&email_key)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(None);
            };
            // Tokens mailed to the old address end with it.
            sqlx::query(super::mail::SPEND_PENDING_TOKENS)
                .bind(id.get())
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.record(events);
            Some(row)
        });
        let row = unique_email(updated, email.as_str(), "cannot update email")?;
        Ok(row.map(User::try_from).transpose()?)
    }

    #[tracing::instrument(skip(self, hash, events), err)]
    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        events: &[NewSecurityEvent],
    ) -> anyhow::Result<bool> {
        const SQL: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
        let updated = write_transaction!(self, |tx| {
            let changed = sqlx::query(SQL)
                .bind(id.get())
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            sqlx::query(super::mail::SPEND_PENDING_CHANGE_AND_RESET_TOKENS)
                .bind(id.get())
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.record(events);
            true
        })
        .db_context("cannot update password")?;
        Ok(updated)
    }

    #[tracing::instrument(skip(self, events), err)]
    async fn update_user_flags(
        &self,
        id: UserId,
        flags: UserFlags,
        events: &[NewSecurityEvent],
    ) -> Result<Option<User>, UserChangeError> {
        const SQL: &str = "UPDATE users \
                           SET is_active = COALESCE($2, is_active), \
                               is_admin = COALESCE($3, is_admin) \
                           WHERE id = $1 \
                           RETURNING id, email, is_active, is_admin, email_verified, created_at";
        // Only disabling or demoting can take an admin away.
        let takes_admin = flags.is_active == Some(false) || flags.is_admin == Some(false);
        let admins = self.active_admins_locked();
        let done = write_transaction!(self, |tx| {
            if takes_admin && is_last_admin!(tx, admins, id) {
                return Ok(None);
            }
            let row = sqlx::query_as::<_, UserRow>(SQL)
                .bind(id.get())
                .bind(flags.is_active)
                .bind(flags.is_admin)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                tx.record(events);
            }
            Some(row)
        })
        .db_context("cannot update user")?;
        let Some(row) = done else {
            return Err(UserChangeError::LastAdmin);
        };
        Ok(row.map(User::try_from).transpose()?)
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_user(&self, id: UserId) -> Result<bool, UserChangeError> {
        // The foreign keys cascade to sessions (and their refresh tokens), posts and votes.
        const SQL: &str = "DELETE FROM users WHERE id = $1";
        let admins = self.active_admins_locked();
        let deleted = write_transaction!(self, |tx| {
            if is_last_admin!(tx, admins, id) {
                return Ok(None);
            }
            let deleted = sqlx::query(SQL)
                .bind(id.get())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Some(deleted)
        })
        .db_context("cannot delete user")?
        .ok_or(UserChangeError::LastAdmin)?;
        Ok(deleted > 0)
    }
}

impl Store {
    /// The query that reads the ids of the active admins, in id order, and on PostgreSQL locks
    /// their rows until the transaction ends. Every change that could take the last admin away
    /// runs it first, so such changes queue one behind the other: under READ COMMITTED, a
    /// change waiting for the lock then reads the admins as the one before it left them (a row
    /// that is no longer an active admin drops out of the locked set). Locking in id order
    /// keeps two such changes from deadlocking. SQLite has one writer, which queues them
    /// already.
    fn active_admins_locked(&self) -> &'static str {
        const SQL: &str = "SELECT id FROM users WHERE is_active AND is_admin ORDER BY id";
        match self.backend() {
            Backend::Sqlite => SQL,
            Backend::Postgres => concat!(
                "SELECT id FROM users WHERE is_active AND is_admin ORDER BY id",
                " FOR UPDATE"
            ),
        }
    }
}

/// Turns a unique violation on a write of `email` into [`SaveUserError::Duplicate`].
pub(super) fn unique_email<T>(
    result: Result<T, sqlx::Error>,
    email: &str,
    context: &'static str,
) -> Result<T, SaveUserError> {
    match result {
        Ok(value) => Ok(value),
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
            Err(SaveUserError::Duplicate {
                email: email.to_owned(),
            })
        }
        Err(err) => Err(db_error(err, context).into()),
    }
}

impl TryFrom<CredentialsRow> for UserCredentials {
    type Error = anyhow::Error;

    fn try_from(row: CredentialsRow) -> anyhow::Result<Self> {
        Ok(UserCredentials {
            user: User::try_from(row.user)?,
            password_hash: PasswordHash::new(row.password_hash),
        })
    }
}
