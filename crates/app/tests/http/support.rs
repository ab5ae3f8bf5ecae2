//! What the HTTP tests share: an app on a fresh database, and assertions on answers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use jsonwebtoken::{EncodingKey, Header};
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::test::{TestClient, TestResponse};
use poem::{EndpointExt, Response};
use serde_json::{Value, json};
use std::sync::Arc;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;
use warden_app::config::{Cli, Config};
use warden_app::{AppState, app};

pub(crate) const SECRET: &str = "an-http-test-secret-of-more-than-32-bytes";
pub(crate) const PASSWORD: &str = "correct horse";

pub(crate) struct TestApp {
    pub(crate) client: TestClient<BoxEndpoint<'static, Response>>,
    pub(crate) db: Arc<TestDb>,
    config: Config,
}

impl TestApp {
    pub(crate) async fn new(backend: Backend) -> Self {
        Self::on(Arc::new(TestDb::new(backend).await), &[])
    }

    /// An app on `db` (which other apps may share, as instances share a database) configured
    /// with `args` besides the defaults.
    pub(crate) fn on(db: Arc<TestDb>, args: &[&str]) -> Self {
        let mut argv = vec!["warden", "--jwt-secret", SECRET, "--database-url", db.url()];
        argv.extend(args);
        let config = Cli::try_parse_from(argv).unwrap().config;
        let state = AppState::new(db.store(), &config).unwrap();
        Self {
            client: TestClient::new(app(state).boxed()),
            db,
            config,
        }
    }

    /// Makes `email` an admin the way an operator does (`warden create-admin`), logs in, and
    /// returns the id and the `Authorization` header value.
    pub(crate) async fn admin(&self, email: &str) -> (i64, String) {
        warden_app::cli::create_admin(&self.config, email, || Ok(PASSWORD.to_owned()))
            .await
            .unwrap();
        let grant = self.login(email, PASSWORD).await;
        let token = grant["access_token"].as_str().unwrap();
        let id = claims_of(token)["user_id"].as_i64().unwrap();
        (id, format!("Bearer {token}"))
    }

    /// Logs in with the password grant and returns the answer's JSON, asserting a 200.
    pub(crate) async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .login_form(&format!(
                "username={}&password={}",
                urlencode(email),
                urlencode(password)
            ))
            .await;
        response.assert_status_is_ok();
        json_of(response).await
    }

    /// Exchanges a refresh token.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.login_form(&format!(
            "grant_type=refresh_token&refresh_token={}",
            urlencode(refresh_token)
        ))
        .await
    }

    pub(crate) async fn register(&self, email: &str, password: &str) -> TestResponse {
        self.client
            .post("/users")
            .body_json(&json!({"email": email, "password": password}))
            .send()
            .await
    }

    pub(crate) async fn login_form(&self, form: &str) -> TestResponse {
        self.client
            .post("/login")
            .content_type("application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
    }

    /// Registers `email` and logs in, returning the access token.
    pub(crate) async fn token_for(&self, email: &str, scope: Option<&str>) -> String {
        self.register(email, PASSWORD)
            .await
            .assert_status(StatusCode::CREATED);
        let mut form = format!("username={email}&password={PASSWORD}");
        if let Some(scope) = scope {
            form.push_str(&format!("&scope={scope}"));
        }
        let response = self.login_form(&form).await;
        response.assert_status_is_ok();
        json_of(response).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Registers `email`, logs in with every scope, and returns the user's id and the
    /// `Authorization` header value to act as them.
    pub(crate) async fn user(&self, email: &str) -> (i64, String) {
        self.user_with_scope(email, None).await
    }

    /// As [`TestApp::user`], with only the scopes `scope` names.
    pub(crate) async fn user_with_scope(&self, email: &str, scope: Option<&str>) -> (i64, String) {
        let token = self.token_for(email, scope).await;
        let id = claims_of(&token)["user_id"].as_i64().unwrap();
        (id, format!("Bearer {token}"))
    }

    /// Logs in as an existing account with only the scopes `scope` names.
    pub(crate) async fn user_with_scope_of_existing(
        &self,
        email: &str,
        scope: &str,
    ) -> (i64, String) {
        let form = format!(
            "username={}&password={}&scope={}",
            urlencode(email),
            urlencode(PASSWORD),
            urlencode(scope)
        );
        let response = self.login_form(&form).await;
        response.assert_status_is_ok();
        let token = json_of(response).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let id = claims_of(&token)["user_id"].as_i64().unwrap();
        (id, format!("Bearer {token}"))
    }

    pub(crate) async fn get_with(&self, path: &str, authorization: &str) -> TestResponse {
        self.client
            .get(path)
            .header("authorization", authorization)
            .send()
            .await
    }
}

pub(crate) async fn json_of(response: TestResponse) -> Value {
    response.0.into_body().into_json().await.unwrap()
}

pub(crate) fn header(response: &TestResponse, name: &str) -> Option<String> {
    response
        .0
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

pub(crate) async fn assert_detail(response: TestResponse, status: StatusCode, detail: &str) {
    response.assert_status(status);
    response.assert_content_type("application/json; charset=utf-8");
    assert_eq!(json_of(response).await, json!({ "detail": detail }));
}

pub(crate) async fn assert_oauth_error(response: TestResponse, error: &str) -> Value {
    response.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(header(&response, "pragma").as_deref(), Some("no-cache"));
    let body = json_of(response).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    body
}

pub(crate) fn forge(header: &Header, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

pub(crate) fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// Percent-encodes a form value.
pub(crate) fn urlencode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

/// One request as `bearer`, with a JSON body if given.
pub(crate) async fn call(
    app: &TestApp,
    method: poem::http::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> TestResponse {
    let mut request = app
        .client
        .request(method, path)
        .header("authorization", bearer);
    if let Some(body) = body {
        request = request.body_json(&body);
    }
    request.send().await
}

/// What a client can compare of an answer: its status, its headers but the ever-changing ones,
/// and its body.
pub(crate) async fn answer(response: TestResponse) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let status = response.0.status();
    let mut headers: Vec<(String, String)> = response
        .0
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = response.0.into_body().into_bytes().await.unwrap().to_vec();
    (status, headers, body)
}
