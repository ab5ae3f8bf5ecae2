//! The HTTP API as a client sees it, over the real route tree. Every test runs once on SQLite
//! and once on PostgreSQL.

/// Runs each listed test body (an `async fn(TestApp)` of the calling module) once per database.
macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    let app = crate::support::TestApp::new(warden_adapters::Backend::Sqlite).await;
                    super::$test(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    let app = crate::support::TestApp::new(warden_adapters::Backend::Postgres).await;
                    super::$test(app).await;
                }
            )*
        }
    };
}

/// Runs each listed test body (an `async fn(Backend)` of the calling module, which makes the app
/// it needs) once per database.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    super::$test(warden_adapters::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    super::$test(warden_adapters::Backend::Postgres).await;
                }
            )*
        }
    };
}

mod account;
mod cors;
mod deadline;
mod devices;
mod errors;
mod events;
mod hostile;
mod keys;
mod limits;
mod mail;
mod metrics;
mod mfa;
mod oauth;
mod posts;
mod scopes;
mod security_headers;
mod sessions;
mod support;
mod takeover;
mod throttling;
mod token;
mod tokens;
mod users;
