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
    AddVoteError, CreateUserError, PostRepository, SessionRepository, UserRepository,
    VoteRepository,
};
use warden_domain::{
    EmailAddress, NewSession, NewUser, PasswordHash, Post, PostContent, PostDraft, PostId,
    PostList, PostQuery, PostTitle, Session, SessionId, User, UserCredentials, UserId,
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
        .context("cannot insert post")?;
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
        .context("cannot read post")?;
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
        .context("cannot list posts")?;
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
            .context("cannot count posts")?,
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
        .context("cannot update post")?;
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
        .context("cannot delete post")?;
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
            Err(err) => Err(anyhow::Error::new(err).context("cannot insert vote").into()),
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
        .context("cannot delete vote")?;
        Ok(deleted > 0)
    }
}
