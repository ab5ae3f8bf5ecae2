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
use warden_domain::ports::{CreateUserError, SessionRepository, UserRepository};
use warden_domain::{
    EmailAddress, NewSession, NewUser, PasswordHash, Session, SessionId, User, UserCredentials,
    UserId,
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
                let connect = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
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

/// The present instant, at the microsecond precision PostgreSQL stores, so that what a write
/// returns equals what a later read gives on both databases.
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
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId::from_uuid(row.id),
            user_id: UserId::new(row.user_id),
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[async_trait]
impl UserRepository for Store {
    #[tracing::instrument(skip_all, err)]
    async fn create(&self, new_user: &NewUser) -> Result<User, CreateUserError> {
        const SQL: &str = "INSERT INTO users (email, email_key, password_hash, created_at) \
                           VALUES ($1, $2, $3, $4) \
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
                .bind(created_at)
                .fetch_one(pool)
                .await
        });
        match inserted {
            Ok(row) => Ok(User::try_from(row)?),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(CreateUserError::Duplicate {
                    email: email.to_owned(),
                })
            }
            Err(err) => Err(anyhow::Error::new(err).context("cannot insert user").into()),
        }
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
        .context("cannot read user")?;
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
        .context("cannot read user credentials")?;
        row.map(|row| {
            Ok(UserCredentials {
                user: User::try_from(row.user)?,
                password_hash: PasswordHash::new(row.password_hash),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl SessionRepository for Store {
    #[tracing::instrument(skip_all, fields(user_id = %new_session.user_id), err)]
    async fn create(&self, new_session: &NewSession) -> anyhow::Result<Session> {
        const SQL: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at) \
                           VALUES ($1, $2, $3, $4) \
                           RETURNING id, user_id, created_at, expires_at, revoked_at";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRow>(SQL)
                .bind(new_session.id.as_uuid())
                .bind(new_session.user_id.get())
                .bind(new_session.created_at.trunc_subsecs(6))
                .bind(new_session.expires_at.trunc_subsecs(6))
                .fetch_one(pool)
                .await
        })
        .context("cannot insert session")?;
        Ok(row.into())
    }

    #[tracing::instrument(skip(self), err)]
    async fn find(&self, id: SessionId) -> anyhow::Result<Option<Session>> {
        const SQL: &str = "SELECT id, user_id, created_at, expires_at, revoked_at \
                           FROM sessions WHERE id = $1";
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, SessionRow>(SQL)
                .bind(id.as_uuid())
                .fetch_optional(pool)
                .await
        })
        .context("cannot read session")?;
        Ok(row.map(Session::from))
    }
}
