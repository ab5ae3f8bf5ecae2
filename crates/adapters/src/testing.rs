//! Fresh, migrated databases for tests: a SQLite file in a temporary directory, or a new
//! database on the PostgreSQL server that `DATABASE_URL` points at. Each is removed when the
//! [`TestDb`] is dropped.
//!
//! PostgreSQL tests never skip: without a `postgres://` `DATABASE_URL` they fail and say how to
//! get one (`cargo xtask ci` finds or starts a server and sets it).

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::{Backend, Store};

mod seed;

pub use seed::{MAX_SESSIONS, Seed, draft, new_session, new_user, refresh_token};

/// A fresh Ed25519 key pair for tests: (private key as PKCS#8 PEM, public key as SPKI PEM).
pub fn ed25519_key_pair() -> (String, String) {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = key.to_pkcs8_pem(LineEnding::LF).expect("encodable key");
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encodable key");
    (private.to_string(), public)
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    store: Store,
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(#[allow(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres {
        admin: Box<PgConnectOptions>,
        name: String,
    },
}

/// With this variable set to a pooler's `postgres://USER@HOST:PORT` (PgBouncer in transaction
/// mode, in front of the server of `DATABASE_URL`), PostgreSQL test databases are created and
/// migrated directly, and then used through the pooler, as `DATABASE_TRANSACTION_POOLING`
/// does. `cargo xtask ci` runs the PostgreSQL tests a second time that way.
pub const POOLER_URL: &str = "WARDEN_TEST_POOLER_URL";

/// The PostgreSQL server tests run against, from `DATABASE_URL`.
pub fn postgres_admin_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if matches!(Backend::of_url(&url), Ok(Backend::Postgres)) => url,
        _ => panic!(
            "PostgreSQL tests need DATABASE_URL=postgres://... pointing at a server where they may \
             create databases. `cargo xtask ci` finds or starts one and sets it; by hand: \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test"
        ),
    }
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let path = dir.path().join("warden-test.db");
        // Opened as the server opens it, with its pools.
        let store = Store::connect(
            &format!("sqlite://{}", path.display()),
            &crate::StoreOptions::default(),
        )
        .await
        .expect("cannot open the test SQLite database");
        Self {
            store,
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let admin =
            PgConnectOptions::from_str(&admin_url).expect("DATABASE_URL is not a valid URL");
        let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.unwrap_or_else(|err| {
            panic!("cannot connect to PostgreSQL at DATABASE_URL={admin_url}: {err}")
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("cannot create the test database");
        conn.close().await.ok();

        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(admin.clone().database(&name))
            .await
            .expect("cannot connect to the test database");
        let store = Store::from_postgres(pool);
        store.migrate().await.expect("cannot migrate PostgreSQL");
        // Behind a transaction pooler, the tests' queries go through it; migrations cannot.
        let store = match std::env::var(POOLER_URL) {
            Ok(pooler) => {
                store.close().await;
                let options = crate::StoreOptions {
                    transaction_pooling: true,
                    ..crate::StoreOptions::default()
                };
                Store::open(
                    &format!("{}/{name}", pooler.trim_end_matches('/')),
                    &options,
                )
                .await
                .unwrap_or_else(|err| panic!("cannot connect through {POOLER_URL}: {err:#}"))
            }
            Err(_) => store,
        };
        let mut url = admin_url;
        if let Some(end_of_host) = url
            .find("://")
            .and_then(|scheme| url[scheme + 3..].find('/').map(|slash| scheme + 3 + slash))
        {
            url.truncate(end_of_host);
        }
        let url = format!("{url}/{name}");
        Self {
            store,
            url,
            cleanup: Cleanup::Postgres {
                admin: Box::new(admin),
                name,
            },
        }
    }

    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// A `DATABASE_URL` for this database, for tests that run the `warden` binary on it.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin, name } = &self.cleanup else {
            return;
        };
        // Drop is synchronous and may run inside a runtime, so the database is dropped from a
        // thread of its own. FORCE ends the connections the test's pool still holds.
        let (admin, name) = ((**admin).clone(), name.clone());
        let dropped = std::thread::spawn({
            let name = name.clone();
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut conn = admin.connect().await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await?;
                    anyhow::Ok(())
                })
            }
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {name}");
        }
    }
}

/// Runs each listed test body once per database, each as a test of its own: `sqlite::<name>` and
/// `postgres::<name>`. The PostgreSQL ones never skip: without a `postgres://` `DATABASE_URL`
/// they fail and say how to get one (see [`postgres_admin_url`]).
///
/// `$run` is an async function, named by a path that resolves from a child module of the caller
/// (`crate::...` or `warden_adapters::...`), that is called with the [`Backend`](crate::Backend)
/// and the body (`super::<name>`), sets up what the body takes, and awaits it:
/// [`with_store`] (a fresh [`Store`]), [`with_backend`] (the backend itself), or the caller's
/// own (the HTTP tests' app, the throttle contract's throttles). Each test is a
/// `#[tokio::test]`, unless an attribute before `$run` says otherwise:
///
/// ```ignore
/// warden_adapters::on_both_databases!(warden_adapters::testing::with_store => a_test, another);
/// warden_adapters::on_both_databases!(
///     #[tokio::test(flavor = "multi_thread")] crate::support::with_app => a_test,
/// );
/// ```
#[macro_export]
macro_rules! on_both_databases {
    (#[$runtime:meta] $run:path => $($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[$runtime]
                async fn $test() {
                    $run($crate::Backend::Sqlite, super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[$runtime]
                async fn $test() {
                    $run($crate::Backend::Postgres, super::$test).await;
                }
            )*
        }
    };
    ($run:path => $($test:ident),* $(,)?) => {
        $crate::on_both_databases!(#[tokio::test] $run => $($test),*);
    };
}

/// For [`on_both_databases!`]: runs `test` on a fresh, migrated store of `backend`, removed once
/// the test is done.
pub async fn with_store<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = TestDb::new(backend).await;
    test(db.store()).await;
}

/// For [`on_both_databases!`]: runs `test` with `backend`, for a test that makes what it needs
/// itself.
pub async fn with_backend<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(backend).await;
}
