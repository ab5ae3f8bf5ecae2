//! The PostgreSQL and SQLite repositories.
//!
//! One [`Store`] implements every repository port for both databases, one module per port
//! (`users`, `sessions`, `posts`, `votes`, `events`, `mfa`, `personal_tokens`,
//! `mail`); this module holds the pool plumbing they share. The
//! SQL is written once: it is portable, and uses `$1`-style parameters, which sqlx's SQLite
//! driver binds by number just as PostgreSQL does. Only the schema differs, in
//! `migrations/{postgres,sqlite}`, and a few statements, each in two forms: the title search
//! (pg_trgm or FTS5), and the row locks of PostgreSQL that SQLite's single writer needs no more
//! than it has: the outbox's claim (`FOR UPDATE SKIP LOCKED`), the active admins' rows that a
//! change which could take the last admin away locks (`users.rs`), and the user's row that a
//! login or a new personal token locks to count against its cap ([`Store::user_locked`]). The alternative, one type per database, would repeat every
//! query and every row conversion.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use warden_domain::error::Unavailable;

use macros::on_pool;

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

/// Creates the SQLite database `file`, empty, readable and writable by its owner only (0600),
/// unless it exists. SQLite gives the `-wal` and `-shm` files it makes beside it the database
/// file's permissions, so they are private too. (sqlx would create it 0644, less the umask:
/// readable by every local user, password hashes and all.) An existing file is left as it is.
fn create_private(file: &std::path::Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err)
            .with_context(|| format!("cannot create the SQLite database {}", file.display())),
    }
}

/// Connection-pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails. Short, so that an outage
    /// surfaces as an error quickly instead of piling up requests.
    pub acquire_timeout: Duration,
    /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`) sits between us and
    /// PostgreSQL: see [`Pool::Postgres`]. Ignored for SQLite.
    pub transaction_pooling: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            transaction_pooling: false,
        }
    }
}

/// The connections of a store. SQLite allows one writer at a time: with several pooled
/// connections writing, each write would start as a reader, try to upgrade, find the lock taken
/// and sleep in SQLite's busy handler (1, 2, 5 ... 100 ms at a time), which made write latency's
/// tail hundreds of milliseconds under load. So SQLite writes go through a pool of exactly one
/// connection, where they queue in order without sleeping, and reads through a pool of many,
/// which WAL lets run beside the writer.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite {
        readers: SqlitePool,
        writer: SqlitePool,
    },
    /// With `transaction_pooling`, each of our connections is a connection to a pooler that
    /// lends a server connection for one transaction at a time, so nothing may outlive one:
    /// no session settings, no prepared statement kept for later. sqlx prepares every statement
    /// in one exchange with the server and binds it in the next, and a pooler may switch servers
    /// between the two unless a transaction holds them together. So in that mode every
    /// operation runs in a transaction (see [`macros::on_postgres!`]), the statement cache is off, and each
    /// transaction first drops the prepared statements a previous client left on the server it
    /// got (`DEALLOCATE ALL`), so that statement names never collide.
    Postgres {
        pool: PgPool,
        transaction_pooling: bool,
    },
}

/// How each operation's transaction begins behind a transaction pooler: clears the server
/// connection's prepared statements (see [`Pool::Postgres`]), and sets the statement timeout
/// for this transaction only (a session setting would leak to the pooler's other clients).
/// One round trip.
const POOLED_BEGIN: &str = "DEALLOCATE ALL; BEGIN; SET LOCAL statement_timeout = '5s'";

/// The timeout PostgreSQL applies to each statement: one that runs this long is cancelled by
/// the server, so that no request waits on the database for longer.
const STATEMENT_TIMEOUT: &str = "5s";

mod events;
mod macros;
mod mail;
mod mfa;
mod personal_tokens;
mod posts;
mod retention;
mod sessions;
mod throttle;
mod users;
mod votes;

pub use throttle::SharedThrottle;

/// The repositories, on SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Woken when this store queues mail, so that the outbox's worker sends it at once rather
    /// than at its next poll.
    mail_queued: std::sync::Arc<tokio::sync::Notify>,
}

impl Store {
    /// Connects to the database `url` names and brings its schema up to date. A SQLite file is
    /// created if missing.
    pub async fn connect(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        let store = Self::open(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to the database `url` names, leaving its schema as it is. A SQLite file is
    /// created if missing.
    pub async fn open(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        let store = match Backend::of_url(url)? {
            Backend::Sqlite => {
                if let Some(file) = sqlite_file(url)? {
                    create_private(&file)?;
                }
                let connect = SqliteConnectOptions::from_str(url)
                    .context("invalid SQLite URL")?
                    .create_if_missing(true)
                    // WAL lets readers work while a write is in progress.
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true)
                    // Deleted rows are overwritten, not left in free pages: a sent mail's
                    // token is gone from the file once its row is.
                    .pragma("secure_delete", "ON")
                    // Only another process (`warden create-admin`) can hold the lock now.
                    .busy_timeout(Duration::from_secs(5));
                // The writer first: it creates the file and switches it to WAL.
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect.clone())
                    .await
                    .context("cannot open the SQLite database")?;
                let readers = SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .context("cannot open the SQLite database")?;
                Self::on(Pool::Sqlite { readers, writer })
            }
            Backend::Postgres => {
                let connect = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
                // A pooler passes on no startup parameters it does not know (PgBouncer refuses
                // them), and keeps no statement for later; the timeout is set per transaction.
                let connect = if options.transaction_pooling {
                    connect.statement_cache_capacity(0).extra_float_digits(None)
                } else {
                    connect.options([("statement_timeout", STATEMENT_TIMEOUT)])
                };
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .context("cannot connect to PostgreSQL")?;
                Self::on(Pool::Postgres {
                    pool,
                    transaction_pooling: options.transaction_pooling,
                })
            }
        };
        Ok(store)
    }

    /// A store on `pool`, which connects to PostgreSQL directly.
    pub fn from_postgres(pool: PgPool) -> Self {
        Self::on(Pool::Postgres {
            pool,
            transaction_pooling: false,
        })
    }

    fn on(pool: Pool) -> Self {
        Self {
            pool,
            mail_queued: std::sync::Arc::default(),
        }
    }

    /// Notified whenever this store queues mail (one waiter at a time; a notification while
    /// nobody waits is kept for the next).
    pub fn mail_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.mail_queued)
    }

    /// On PostgreSQL, the statement that locks user `$1`'s row until the transaction ends, so
    /// that what one transaction counts of the user's sessions or tokens another cannot change
    /// before it commits (under READ COMMITTED, a transaction waiting for the lock then reads
    /// what the one before it committed). `FOR NO KEY UPDATE` does not block inserting rows
    /// that refer to the user. SQLite's single writer queues such transactions already.
    fn user_locked(&self) -> Option<&'static str> {
        match self.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => Some("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE"),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Applies the migrations this database has not seen yet.
    ///
    /// # Errors
    ///
    /// The database cannot be read or changed, or a migration fails. Behind a transaction
    /// pooler migrating is refused: it holds a session-wide lock and runs statements outside any
    /// transaction, so it must connect to PostgreSQL directly.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite { writer, .. } => SQLITE_MIGRATIONS.run(writer).await,
            Pool::Postgres {
                transaction_pooling: true,
                ..
            } => anyhow::bail!(
                "migrations cannot run through a transaction pooler: run `warden migrate` with a \
                 DATABASE_URL that reaches PostgreSQL directly, then serve with --no-migrate"
            ),
            Pool::Postgres { pool, .. } => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .context("cannot migrate the database")
    }

    /// The migrations of this build that the database has not applied (successfully), as
    /// `VERSION_description`, oldest first.
    ///
    /// # Errors
    ///
    /// The database cannot be read.
    pub async fn pending_migrations(&self) -> anyhow::Result<Vec<String>> {
        // No table yet: nothing applied. Any other failure is an error.
        const EXISTS: &str = "SELECT COUNT(*) FROM information_schema.tables \
                              WHERE table_name = '_sqlx_migrations'";
        const SQLITE_EXISTS: &str =
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";
        let (sql, migrator) = match self.backend() {
            Backend::Sqlite => (SQLITE_EXISTS, &SQLITE_MIGRATIONS),
            Backend::Postgres => (EXISTS, &POSTGRES_MIGRATIONS),
        };
        let exists = on_pool!(self, |pool| sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await);
        let applied: Vec<i64> = if exists.db_context("cannot read the schema's version")? > 0 {
            on_pool!(self, |pool| sqlx::query_scalar(APPLIED)
                .fetch_all(pool)
                .await)
            .db_context("cannot read the applied migrations")?
        } else {
            Vec::new()
        };
        Ok(migrator
            .iter()
            .filter(|migration| !applied.contains(&migration.version))
            .map(|migration| {
                format!(
                    "{}_{}",
                    migration.version,
                    migration.description.replace(' ', "_")
                )
            })
            .collect())
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The pool's connections: (open, idle), over both SQLite pools.
    pub fn pool_connections(&self) -> (u32, u32) {
        let count = |size: u32, idle: usize| (size, u32::try_from(idle).unwrap_or(u32::MAX));
        match &self.pool {
            Pool::Sqlite { readers, writer } => {
                let (r, w) = (
                    count(readers.size(), readers.num_idle()),
                    count(writer.size(), writer.num_idle()),
                );
                (r.0 + w.0, r.1 + w.1)
            }
            Pool::Postgres { pool, .. } => count(pool.size(), pool.num_idle()),
        }
    }

    /// Waits for the connections in use to be returned, then closes them all.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite { readers, writer } => {
                readers.close().await;
                writer.close().await;
            }
            Pool::Postgres { pool, .. } => pool.close().await,
        }
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
        // A protocol error is bytes from the server (or a proxy in front of it) that make no
        // sense, such as a connection closed in the middle of the TLS negotiation: the database
        // cannot be reached properly right now, which no request causes.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
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
    stored_time(Utc::now())
}

/// `time` at the precision both databases store (microseconds), so that what a write is given
/// equals what a later read returns.
fn stored_time(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(6)
}

fn count_to_i64(count: u64) -> anyhow::Result<i64> {
    i64::try_from(count).context("count out of range")
}
