//! The PostgreSQL and SQLite repositories.
//!
//! One [`Store`] implements every repository port for both databases. The SQL is written once:
//! it is portable, and uses `$1`-style parameters, which sqlx's SQLite driver binds by number
//! just as PostgreSQL does. Only the schema differs, in `migrations/{postgres,sqlite}`.
//! The alternative, one type per database, would repeat every query and every row conversion.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use uuid::Uuid;
use warden_domain::ports::{
    AddVoteError, PostRepository, SaveUserError, SessionRepository, Unavailable, UserRepository,
    VoteRepository,
};
use warden_domain::{
    EmailAddress, NewRefreshToken, NewSession, NewUser, Page, PasswordHash, Post, PostContent,
    PostDraft, PostId, PostList, PostQuery, PostTitle, RefreshTokenHash, Rotation, Scopes, Session,
    SessionId, User, UserCredentials, UserFlags, UserId,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names, by its scheme.
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => anyhow::bail!(
                "unsupported database URL scheme {scheme:?}: use sqlite:// or postgres://"
            ),
        }
    }
}

/// The file a `sqlite://` URL names, or `None` for an in-memory database.
pub fn sqlite_file(url: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    let options = SqliteConnectOptions::from_str(url).context("invalid SQLite URL")?;
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    Ok((!in_memory).then(|| options.get_filename().to_path_buf()))
}

/// Connection-pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails. Short, so that an outage
    /// surfaces as an error quickly instead of piling up requests.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store holds. The body is compiled once per
/// database, with `$pool` bound to that database's pool.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// The repositories, on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects to the database `url` names and brings its schema up to date. A SQLite file is
    /// created if missing.
    pub async fn connect(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        let store = match Backend::of_url(url)? {
            Backend::Sqlite => {
                let connect = SqliteConnectOptions::from_str(url)
                    .context("invalid SQLite URL")?
                    .create_if_missing(true)
                    // WAL lets readers work while a write is in progress.
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .context("cannot open the SQLite database")?;
                Self::from_sqlite(pool)
            }
            Backend::Postgres => {
                // A statement that runs this long is cancelled by the server, so that no request
                // waits on the database for longer.
                let connect = PgConnectOptions::from_str(url)
                    .context("invalid PostgreSQL URL")?
                    .options([("statement_timeout", "5s")]);
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .context("cannot connect to PostgreSQL")?;
                Self::from_postgres(pool)
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn from_sqlite(pool: SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
        }
    }

    pub fn from_postgres(pool: PgPool) -> Self {
        Self {
            pool: Pool::Postgres(pool),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the migrations this database has not seen yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .context("cannot migrate the database")
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Waits for the connections in use to be returned, then closes them all.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}

/// Wraps a sqlx error for the domain: a failure that says nothing about the request but only
/// that the database cannot be reached right now is marked [`Unavailable`], so that callers
/// answer "try again" (503) rather than "bug" (500).
fn db_error(err: sqlx::Error, context: &'static str) -> anyhow::Error {
    if is_transient(&err) {
        anyhow::Error::new(Unavailable {
            source: Box::new(err),
        })
        .context(context)
    } else {
        anyhow::Error::new(err).context(context)
    }
}

fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: class 08 (connection exception), 53300 (too many connections),
            // 57P01..57P03 (shutting down, crashed, starting up). SQLite: 5 and 6 (busy, locked
            // past the busy timeout).
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "53300" | "57P01" | "57P02" | "57P03" | "5" | "6"
                )
        }),
        _ => false,
    }
}

/// `.context()` for sqlx results, classifying the error with [`db_error`].
trait DbResultExt<T> {
    fn db_context(self, context: &'static str) -> anyhow::Result<T>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn db_context(self, context: &'static str) -> anyhow::Result<T> {
        self.map_err(|err| db_error(err, context))
    }
}

/// The present instant, at the microsecond precision PostgreSQL stores, so that what a write
/// returns equals what a later read gives on both databases.
///
/// SQLite keeps times as sqlx writes them: RFC 3339 in UTC (`+00:00`) with 0, 3, 6 or 9
/// fractional digits. Compared as text, such strings sort in time order (`+` sorts before `.`
/// and every digit), which `ORDER BY created_at` relies on. Other comparisons of times are made
/// in Rust.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    email: String,
    is_active: bool,
    is_admin: bool,
    created_at: DateTime<Utc>,
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
        })
    }
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: i64,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    scopes: String,
}

impl TryFrom<SessionRow> for Session {
    type Error = anyhow::Error;

    fn try_from(row: SessionRow) -> anyhow::Result<Self> {
        Ok(Session {
            scopes: Scopes::parse(&row.scopes)
                .with_context(|| format!("session {} has invalid stored scopes", row.id))?,
            id: SessionId::from_uuid(row.id),
            user_id: UserId::new(row.user_id),
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        })
    }
}

const SESSION_COLUMNS_BY_ID: &str = "SELECT id, user_id, created_at, expires_at, revoked_at, scopes \
                                     FROM sessions WHERE id = $1";

#[async_trait]
impl UserRepository for Store {
    #[tracing::instrument(skip_all, err)]
    async fn create(&self, new_user: &NewUser) -> Result<User, SaveUserError> {
        const SQL: &str = "INSERT INTO users (email, email_key, password_hash, is_admin, created_at) \
                           VALUES ($1, $2, $3, $4, $5) \
                           RETURNING id, email, is_active, is_admin, created_at";
        let email = new_user.email.as_str();
        let email_key = new_user.email.normalized();
        let hash = new_user.password_hash.as_str();
        let created_at = now();
        let inserted = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(SQL)
                .bind(email)
                .bind(&email_key)
                .bind(hash)
                .bind(new_user.is_admin)
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
    async fn find_by_id(&self, id: UserId) -> anyhow::Result<Option<User>> {
        const SQL: &str = "SELECT id, email, is_active, is_admin, created_at \
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
        const SQL: &str = "SELECT id, email, is_active, is_admin, created_at, password_hash \
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
        const SQL: &str = "SELECT id, email, is_active, is_admin, created_at, password_hash \
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
    async fn list(&self, page: Page) -> anyhow::Result<Vec<User>> {
        const SQL: &str = "SELECT id, email, is_active, is_admin, created_at \
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

    #[tracing::instrument(skip(self, email), err)]
    async fn update_email(
        &self,
        id: UserId,
        email: &EmailAddress,
    ) -> Result<Option<User>, SaveUserError> {
        const SQL: &str = "UPDATE users SET email = $2, email_key = $3 WHERE id = $1 \
                           RETURNING id, email, is_active, is_admin, created_at";
        let email_key = email.normalized();
        let updated = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(SQL)
                .bind(id.get())
                .bind(email.as_str())
                .bind(&email_key)
                .fetch_optional(pool)
                .await
        });
        let row = unique_email(updated, email.as_str(), "cannot update email")?;
        Ok(row.map(User::try_from).transpose()?)
    }

    #[tracing::instrument(skip(self, hash), err)]
    async fn update_password(&self, id: UserId, hash: &PasswordHash) -> anyhow::Result<bool> {
        const SQL: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
        let updated = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .bind(hash.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot update password")?;
        Ok(updated > 0)
    }

    #[tracing::instrument(skip(self), err)]
    async fn update_flags(&self, id: UserId, flags: UserFlags) -> anyhow::Result<Option<User>> {
        const SQL: &str = "UPDATE users \
                           SET is_active = COALESCE($2, is_active), \
                               is_admin = COALESCE($3, is_admin) \
                           WHERE id = $1 \
                           RETURNING id, email, is_active, is_admin, created_at";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, UserRow>(SQL)
                .bind(id.get())
                .bind(flags.is_active)
                .bind(flags.is_admin)
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot update user")?;
        row.map(User::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete(&self, id: UserId) -> anyhow::Result<bool> {
        // The foreign keys cascade to sessions (and their refresh tokens), posts and votes.
        const SQL: &str = "DELETE FROM users WHERE id = $1";
        let deleted = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete user")?;
        Ok(deleted > 0)
    }
}

/// Turns a unique violation on a write of `email` into [`SaveUserError::Duplicate`].
fn unique_email<T>(
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

#[async_trait]
impl SessionRepository for Store {
    #[tracing::instrument(skip_all, fields(user_id = %new_session.user_id), err)]
    async fn create(
        &self,
        new_session: &NewSession,
        refresh_token: &NewRefreshToken,
    ) -> anyhow::Result<Session> {
        const SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, scopes) \
                               VALUES ($1, $2, $3, $4, $5) \
                               RETURNING id, user_id, created_at, expires_at, revoked_at, scopes";
        const REFRESH: &str = "INSERT INTO refresh_tokens \
                               (token_hash, session_id, created_at, expires_at) \
                               VALUES ($1, $2, $3, $4)";
        let scopes = new_session.scopes.to_string();
        let created_at = new_session.created_at.trunc_subsecs(6);
        let row = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let row = sqlx::query_as::<_, SessionRow>(SESSION)
                    .bind(new_session.id.as_uuid())
                    .bind(new_session.user_id.get())
                    .bind(created_at)
                    .bind(new_session.expires_at.trunc_subsecs(6))
                    .bind(&scopes)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(REFRESH)
                    .bind(refresh_token.hash.as_str())
                    .bind(new_session.id.as_uuid())
                    .bind(created_at)
                    .bind(refresh_token.expires_at.trunc_subsecs(6))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            }
            .await
        })
        .db_context("cannot insert session")?;
        Session::try_from(row)
    }

    #[tracing::instrument(skip(self), err)]
    async fn find(&self, id: SessionId) -> anyhow::Result<Option<Session>> {
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRow>(SESSION_COLUMNS_BY_ID)
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read session")?;
        row.map(Session::try_from).transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn find_by_refresh_token(
        &self,
        presented: &RefreshTokenHash,
    ) -> anyhow::Result<Option<Session>> {
        const SQL: &str = "SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, \
                                  s.scopes \
                           FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id \
                           WHERE r.token_hash = $1";
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
        presented: &RefreshTokenHash,
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
        let now = now.trunc_subsecs(6);
        let outcome = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let spent: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(SPEND)
                    .bind(presented.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let outcome = match spent {
                    // An expired token stays as it was: rolling back un-spends it.
                    Some((_, expires_at)) if expires_at <= now => {
                        tx.rollback().await?;
                        return Ok(RotationRow::Invalid);
                    }
                    Some((session_id, _)) => {
                        sqlx::query(NEXT)
                            .bind(next.hash.as_str())
                            .bind(session_id)
                            .bind(now)
                            .bind(next.expires_at.trunc_subsecs(6))
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
                };
                tx.commit().await?;
                Ok::<_, sqlx::Error>(outcome)
            }
            .await
        })
        .db_context("cannot rotate refresh token")?;
        Ok(match outcome {
            RotationRow::Rotated(row) => Rotation::Rotated(Session::try_from(row)?),
            RotationRow::Replayed(id) => Rotation::Replayed(SessionId::from_uuid(id)),
            RotationRow::Invalid => Rotation::Invalid,
        })
    }

    #[tracing::instrument(skip(self), err)]
    async fn revoke(&self, id: SessionId, at: DateTime<Utc>) -> anyhow::Result<bool> {
        const SQL: &str =
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
        let revoked = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.as_uuid())
                .bind(at.trunc_subsecs(6))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot revoke session")?;
        Ok(revoked > 0)
    }

    #[tracing::instrument(skip(self), err)]
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        at: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        const SQL: &str = "UPDATE sessions SET revoked_at = $3 \
                           WHERE user_id = $1 AND revoked_at IS NULL \
                             AND ($2 IS NULL OR id <> $2)";
        let revoked = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(except.map(SessionId::as_uuid))
                .bind(at.trunc_subsecs(6))
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot revoke sessions")?;
        Ok(revoked)
    }
}

/// [`Rotation`] before its session row is converted.
enum RotationRow {
    Rotated(SessionRow),
    Replayed(Uuid),
    Invalid,
}

/// The columns of a post with its owner and vote count. Macros, not consts, so that `concat!`
/// can build whole queries from them as `&'static str`s.
macro_rules! post_columns {
    () => {
        "SELECT p.id, p.title, p.content, p.published, p.created_at, p.updated_at, \
                u.id AS owner_id, u.email AS owner_email, u.is_active AS owner_is_active, \
                u.is_admin AS owner_is_admin, u.created_at AS owner_created_at, \
                (SELECT COUNT(*) FROM votes v WHERE v.post_id = p.id) AS votes "
    };
}

/// The tables those columns come from.
macro_rules! post_tables {
    () => {
        "FROM posts p JOIN users u ON u.id = p.owner_id "
    };
}

/// Which posts a list shows: those viewer `$1` may see, whose title matches LIKE pattern `$2`
/// (all of them when `$2` is NULL).
macro_rules! post_list_filter {
    () => {
        "WHERE (p.published OR p.owner_id = $1) \
           AND ($2 IS NULL OR p.title_key LIKE $2 ESCAPE '\\') "
    };
}

#[derive(sqlx::FromRow)]
struct PostRow {
    id: i64,
    title: String,
    content: String,
    published: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    owner_id: i64,
    owner_email: String,
    owner_is_active: bool,
    owner_is_admin: bool,
    owner_created_at: DateTime<Utc>,
    votes: i64,
}

impl TryFrom<PostRow> for Post {
    type Error = anyhow::Error;

    fn try_from(row: PostRow) -> anyhow::Result<Self> {
        let invalid = |what: &str| format!("post {} has an invalid stored {what}", row.id);
        Ok(Post {
            id: PostId::new(row.id),
            title: PostTitle::new(row.title).with_context(|| invalid("title"))?,
            content: PostContent::new(row.content).with_context(|| invalid("content"))?,
            published: row.published,
            created_at: row.created_at,
            updated_at: row.updated_at,
            owner: User::try_from(UserRow {
                id: row.owner_id,
                email: row.owner_email,
                is_active: row.owner_is_active,
                is_admin: row.owner_is_admin,
                created_at: row.owner_created_at,
            })?,
            votes: u64::try_from(row.votes).context("negative vote count")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ListedPostRow {
    #[sqlx(flatten)]
    post: PostRow,
    /// How many posts match the whole query, whatever the page.
    total: i64,
}

/// A LIKE pattern that matches titles containing `search`, ignoring case: the search is
/// lower-cased as titles' keys are, and LIKE's wildcards in it are escaped.
fn title_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn count_to_i64(count: u64) -> anyhow::Result<i64> {
    i64::try_from(count).context("count out of range")
}

#[async_trait]
impl PostRepository for Store {
    #[tracing::instrument(skip(self, draft), err)]
    async fn create(&self, owner: UserId, draft: &PostDraft) -> anyhow::Result<Post> {
        const SQL: &str = "INSERT INTO posts \
                           (owner_id, title, title_key, content, published, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
        let title_key = draft.title.as_str().to_lowercase();
        let id: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(SQL)
                .bind(owner.get())
                .bind(draft.title.as_str())
                .bind(&title_key)
                .bind(draft.content.as_str())
                .bind(draft.published)
                .bind(now())
                .fetch_one(pool)
                .await
        })
        .db_context("cannot insert post")?;
        PostRepository::find(self, PostId::new(id))
            .await?
            .context("the post just inserted is gone")
    }

    #[tracing::instrument(skip(self), err)]
    async fn find(&self, id: PostId) -> anyhow::Result<Option<Post>> {
        const SQL: &str = concat!(post_columns!(), post_tables!(), "WHERE p.id = $1");
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, PostRow>(SQL)
                .bind(id.get())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read post")?;
        row.map(Post::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn list(&self, query: &PostQuery) -> anyhow::Result<PostList> {
        // The window function counts every match before LIMIT applies: page and total in one
        // query. Only a page past the end has no row to carry the total; then it is counted.
        const PAGE: &str = concat!(
            post_columns!(),
            ", COUNT(*) OVER () AS total ",
            post_tables!(),
            post_list_filter!(),
            "ORDER BY p.created_at DESC, p.id DESC LIMIT $3 OFFSET $4"
        );
        const COUNT: &str = concat!("SELECT COUNT(*) FROM posts p ", post_list_filter!());
        let viewer = query.viewer.get();
        let pattern = query.search.as_deref().map(title_pattern);
        let limit = i64::from(query.page.limit());
        let skip = count_to_i64(query.page.skip())?;
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, ListedPostRow>(PAGE)
                .bind(viewer)
                .bind(&pattern)
                .bind(limit)
                .bind(skip)
                .fetch_all(pool)
                .await
        })
        .db_context("cannot list posts")?;
        let total = match rows.first() {
            Some(row) => row.total,
            None if skip == 0 => 0,
            None => on_pool!(self, |pool| {
                sqlx::query_scalar::<_, i64>(COUNT)
                    .bind(viewer)
                    .bind(&pattern)
                    .fetch_one(pool)
                    .await
            })
            .db_context("cannot count posts")?,
        };
        Ok(PostList {
            posts: rows
                .into_iter()
                .map(|row| Post::try_from(row.post))
                .collect::<anyhow::Result<_>>()?,
            total: u64::try_from(total).context("negative post count")?,
        })
    }

    #[tracing::instrument(skip(self, draft), err)]
    async fn replace(&self, id: PostId, draft: &PostDraft) -> anyhow::Result<Option<Post>> {
        const SQL: &str = "UPDATE posts \
                           SET title = $2, title_key = $3, content = $4, published = $5, \
                               updated_at = $6 \
                           WHERE id = $1";
        let title_key = draft.title.as_str().to_lowercase();
        let updated = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .bind(draft.title.as_str())
                .bind(&title_key)
                .bind(draft.content.as_str())
                .bind(draft.published)
                .bind(now())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot update post")?;
        if updated == 0 {
            return Ok(None);
        }
        PostRepository::find(self, id).await
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete(&self, id: PostId) -> anyhow::Result<bool> {
        const SQL: &str = "DELETE FROM posts WHERE id = $1";
        let deleted = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete post")?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl VoteRepository for Store {
    #[tracing::instrument(skip(self), err)]
    async fn add(&self, user: UserId, post: PostId) -> Result<(), AddVoteError> {
        const SQL: &str = "INSERT INTO votes (user_id, post_id, created_at) VALUES ($1, $2, $3)";
        let inserted = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(post.get())
                .bind(now())
                .execute(pool)
                .await
                .map(drop)
        });
        match inserted {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(AddVoteError::AlreadyVoted { user, post })
            }
            Err(sqlx::Error::Database(err)) if err.is_foreign_key_violation() => {
                Err(AddVoteError::PostNotFound(post))
            }
            Err(err) => Err(db_error(err, "cannot insert vote").into()),
        }
    }

    #[tracing::instrument(skip(self), err)]
    async fn remove(&self, user: UserId, post: PostId) -> anyhow::Result<bool> {
        const SQL: &str = "DELETE FROM votes WHERE user_id = $1 AND post_id = $2";
        let deleted = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(post.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete vote")?;
        Ok(deleted > 0)
    }
}
