//! What the HTTP tests share besides `warden_app::testing`: assertions on answers, and forged
//! and decoded tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use poem::http::StatusCode;
use poem::test::TestResponse;
use serde_json::{Value, json};

pub(crate) use warden_app::testing::{
    PASSWORD, SECRET, TestApp, TestUser, encode as urlencode, json_of,
};

/// For `warden_adapters::on_both_databases!`: runs `test` on the app on a fresh database of
/// `backend`.
pub(crate) async fn with_app<F, Fut>(backend: warden_adapters::Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    test(TestApp::new(backend).await).await;
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
