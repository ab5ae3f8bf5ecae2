//! CORS (contract section 7): browser pages on the allowed origins may call the API; other
//! origins get no `Access-Control-Allow-Origin`, and without a list there is no CORS at all.

use std::sync::Arc;

use poem::http::StatusCode;
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;

use crate::support::*;

const APP: &str = "https://app.example.com";
const OTHER: &str = "https://evil.example.net";

async fn with_cors() -> TestApp {
    TestApp::on(
        Arc::new(TestDb::new(Backend::Sqlite).await),
        &[
            "--cors-allowed-origins",
            &format!("{APP},http://localhost:3000"),
        ],
    )
}

async fn preflight(app: &TestApp, origin: &str, path: &str) -> poem::test::TestResponse {
    app.client
        .options(path)
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_allowed_with_the_paths_methods() {
    let app = with_cors().await;
    let response = preflight(&app, APP, "/users/me").await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(
        header(&response, "access-control-allow-methods").as_deref(),
        Some("DELETE, GET, PATCH")
    );
    assert_eq!(
        header(&response, "access-control-allow-headers").as_deref(),
        Some("Authorization, Content-Type, DPoP, X-Request-Id, traceparent")
    );
    // A trailing slash is the same path.
    let response = preflight(&app, APP, "/posts/").await;
    assert_eq!(
        header(&response, "access-control-allow-methods").as_deref(),
        Some("GET, POST")
    );
}

#[tokio::test]
async fn other_origins_get_no_cors_headers_but_same_origin_requests_still_work() {
    let app = with_cors().await;
    let response = preflight(&app, OTHER, "/users/me").await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    assert_eq!(header(&response, "access-control-allow-methods"), None);

    // Swagger UI on Warden's own address sends its Origin on POSTs: not refused.
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let response = app
        .client
        .post("/login")
        .header("origin", "http://127.0.0.1:8000")
        .content_type("application/x-www-form-urlencoded")
        .body("username=ann%40example.com&password=correct+horse")
        .send()
        .await;
    response.assert_status_is_ok();
    assert_eq!(header(&response, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn allowed_origins_may_read_answers_errors_and_the_total_count() {
    let app = with_cors().await;
    let ann = app.user("ann@example.com").await;
    let response = app
        .client
        .get("/posts")
        .header("origin", APP)
        .header("authorization", &ann.bearer)
        .send()
        .await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(
        header(&response, "access-control-expose-headers").as_deref(),
        Some("X-Total-Count, Retry-After, X-Request-Id, WWW-Authenticate, DPoP-Nonce")
    );
    assert_eq!(header(&response, "vary").as_deref(), Some("Origin"));
    // An error is readable too.
    let response = app
        .client
        .get("/users/me")
        .header("origin", APP)
        .send()
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    // ...with why the token was refused.
    assert!(header(&response, "www-authenticate").is_some());
    assert!(
        header(&response, "access-control-expose-headers")
            .unwrap()
            .contains("WWW-Authenticate")
    );
}

#[tokio::test]
async fn without_a_list_there_are_no_cors_headers() {
    let app = TestApp::new(Backend::Sqlite).await;
    let response = preflight(&app, APP, "/users/me").await;
    response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let response = app
        .client
        .get("/health/live")
        .header("origin", APP)
        .send()
        .await;
    assert_eq!(header(&response, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn an_invalid_origin_is_a_configuration_error() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let config =
        warden_app::testing::config(db.url(), &["--cors-allowed-origins", "app.example.com/"]);
    let err = warden_app::AppState::new(db.store(), &config).unwrap_err();
    assert!(err.to_string().contains("is not an origin"), "{err}");
}
