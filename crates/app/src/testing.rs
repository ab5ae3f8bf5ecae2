//! What every test of the app shares (feature `testing`): [`TestApp`], the real route tree on a
//! fresh database with a client to call it, and [`TestUser`], an account a test acts as.
//! Modelled on zero-to-production's `spawn_app()`: tests say what they do, not how to log in.

use std::sync::Arc;

use clap::Parser;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::test::{TestClient, TestResponse};
use poem::{EndpointExt, Response};
use serde_json::{Value, json};
use warden_adapters::testing::TestDb;
use warden_adapters::{Backend, Store};

use crate::config::{Cli, Config};
use crate::{AppState, app};

mod mail;

pub use mail::{Mail, MailCatcher};

/// The signing secret of test apps.
pub const SECRET: &str = "an-http-test-secret-of-more-than-32-bytes";

/// Arguments that turn email on with a mail server nobody listens at (the discard port): for
/// tests of the API that do not read the mail. The outbox's worker retries in the background.
pub const UNREACHABLE_MAIL: [&str; 4] = [
    "--smtp-url",
    "smtp://127.0.0.1:9",
    "--mail-from",
    "warden@example.com",
];

/// The password of every [`TestUser`] a test does not give one.
pub const PASSWORD: &str = "correct horse";

/// The app on a database of its own (or one it shares with other apps, as instances share a
/// database), and a client that calls its route tree in-process.
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub db: Arc<TestDb>,
    pub config: Config,
    /// With email on, the outbox's worker, as `serve` runs it; stopped with the app.
    mail_worker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(worker) = &self.mail_worker {
            worker.abort();
        }
    }
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("db", &self.db).finish()
    }
}

/// An account a test acts as, logged in: one session, with its tokens.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    /// The scopes the login granted.
    pub scope: String,
    /// `Bearer <access token>`: the `Authorization` header to act as this user.
    pub bearer: String,
}

impl TestApp {
    /// An app with the default configuration on a fresh database.
    pub async fn new(backend: Backend) -> Self {
        Self::on(Arc::new(TestDb::new(backend).await), &[])
    }

    /// An app on `db` configured with `args` besides the defaults.
    ///
    /// # Panics
    ///
    /// If `args` are not valid configuration.
    pub fn on(db: Arc<TestDb>, args: &[&str]) -> Self {
        let config = config(db.url(), args);
        let store = db.store();
        Self::with_store(db, store, config)
    }

    /// An app on `db` through a store the test made itself (behind a fault-injecting proxy,
    /// say).
    ///
    /// # Panics
    ///
    /// If the configuration cannot make an app.
    pub fn with_store(db: Arc<TestDb>, store: Store, config: Config) -> Self {
        let mail_queued = store.mail_queued();
        let state = AppState::new(store, &config).expect("a valid test configuration");
        let mail_worker = state.email.as_ref().map(|email| {
            crate::server::background::spawn_mail_worker(email.delivery.clone(), mail_queued)
        });
        Self {
            client: TestClient::new(app(state).boxed()),
            db,
            config,
            mail_worker,
        }
    }

    /// An app on a fresh database with email on, sending through `catcher`, configured with
    /// `args` besides.
    pub async fn with_mail(backend: Backend, catcher: &MailCatcher, args: &[&str]) -> Self {
        let url = catcher.url();
        let mut all = vec![
            "--smtp-url",
            &url,
            "--mail-from",
            "Warden <warden@example.com>",
        ];
        all.extend(args);
        Self::on(Arc::new(TestDb::new(backend).await), &all)
    }

    /// `POST /users`.
    pub async fn register(&self, email: &str, password: &str) -> TestResponse {
        self.client
            .post("/users")
            .body_json(&json!({"email": email, "password": password}))
            .send()
            .await
    }

    /// `POST /login` with `form` as the body, as given.
    pub async fn login_form(&self, form: &str) -> TestResponse {
        self.client
            .post("/login")
            .content_type("application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
    }

    /// A password login: a new session of an existing account, with the scopes `scope` names
    /// (all the account may hold when `None`).
    ///
    /// # Panics
    ///
    /// Unless the login answers 200.
    pub async fn log_in(&self, email: &str, password: &str, scope: Option<&str>) -> TestUser {
        let mut form = format!("username={}&password={}", encode(email), encode(password));
        if let Some(scope) = scope {
            form.push_str(&format!("&scope={}", encode(scope)));
        }
        let response = self.login_form(&form).await;
        response.assert_status_is_ok();
        let grant = json_of(response).await;
        let id = claim(&grant, "user_id")
            .as_i64()
            .expect("access tokens carry user_id");
        TestUser::from_grant(id, email, password, &grant)
    }

    /// The same account logged in again: a second session.
    pub async fn log_in_again(&self, user: &TestUser, scope: Option<&str>) -> TestUser {
        self.log_in(&user.email, &user.password, scope).await
    }

    /// A new account with [`PASSWORD`], logged in with every scope it may hold.
    pub async fn user(&self, email: &str) -> TestUser {
        self.user_with_scope(email, None).await
    }

    /// A new account with [`PASSWORD`], logged in with the scopes `scope` names.
    ///
    /// # Panics
    ///
    /// Unless registration answers 201.
    pub async fn user_with_scope(&self, email: &str, scope: Option<&str>) -> TestUser {
        self.register(email, PASSWORD)
            .await
            .assert_status(StatusCode::CREATED);
        self.log_in(email, PASSWORD, scope).await
    }

    /// An admin made as an operator makes one (`warden create-admin`), logged in with every
    /// scope.
    ///
    /// # Panics
    ///
    /// If `create-admin` fails.
    pub async fn admin(&self, email: &str) -> TestUser {
        crate::cli::create_admin(&self.config, email, || Ok(PASSWORD.to_owned()))
            .await
            .expect("create-admin works");
        self.log_in(email, PASSWORD, None).await
    }

    /// `POST /login` with the refresh grant.
    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.login_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            encode(refresh_token)
        ))
        .await
    }

    /// `GET path` with this `Authorization` header.
    pub async fn get_with(&self, path: &str, authorization: &str) -> TestResponse {
        self.call(Method::GET, path, authorization, None).await
    }

    /// One request with this `Authorization` header, and a JSON body if given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = self
            .client
            .request(method, path)
            .header("authorization", authorization);
        if let Some(body) = body {
            request = request.body_json(&body);
        }
        request.send().await
    }
}

impl TestUser {
    fn from_grant(id: i64, email: &str, password: &str, grant: &Value) -> Self {
        let field = |name: &str| grant[name].as_str().unwrap_or_default().to_owned();
        Self {
            id,
            email: email.to_owned(),
            password: password.to_owned(),
            bearer: format!("Bearer {}", field("access_token")),
            access_token: field("access_token"),
            refresh_token: field("refresh_token"),
            scope: field("scope"),
        }
    }
}

/// The configuration of a test app on `database_url`: [`SECRET`] and `args`.
///
/// # Panics
///
/// If `args` are not valid configuration.
pub fn config(database_url: &str, args: &[&str]) -> Config {
    let mut argv = vec![
        "warden",
        "--jwt-secret",
        SECRET,
        "--database-url",
        database_url,
    ];
    argv.extend(args);
    Cli::try_parse_from(argv)
        .expect("valid test arguments")
        .config
}

/// The body of an answer as JSON.
///
/// # Panics
///
/// If the body is not JSON.
pub async fn json_of(response: TestResponse) -> Value {
    response.0.into_body().into_json().await.unwrap()
}

/// Percent-encodes a form value.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// A claim of the access token of a token answer, read without checking the signature.
fn claim(grant: &Value, name: &str) -> Value {
    use base64::Engine as _;
    let payload = grant["access_token"]
        .as_str()
        .and_then(|token| token.split('.').nth(1))
        .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .map_or(Value::Null, |claims| claims[name].clone())
}
