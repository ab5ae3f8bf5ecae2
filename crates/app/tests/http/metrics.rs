//! `GET /metrics` (contract section 7): the series move as requests are served, routes are
//! templates, and no label holds an email, a token or a raw path.

use poem::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app => metrics_count_requests_by_route_template_and_leak_nothing,
);

/// The value of the series `name{labels}` (labels as rendered), or 0.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get("/metrics").send().await;
    response.assert_status_is_ok();
    assert!(
        header(&response, "content-type")
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4")
    );
    response.0.into_body().into_string().await.unwrap()
}

async fn metrics_count_requests_by_route_template_and_leak_nothing(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let post = json_of(
        app.call(
            Method::POST,
            "/posts",
            &ann.bearer,
            Some(json!({"title": "counted", "content": "x"})),
        )
        .await,
    )
    .await;
    let path = format!("/posts/{}", post["id"]);
    let get_post = r#"http_requests_total{method="GET",route="/posts/{id}",status="200"}"#;
    let before = scrape(&app).await;

    for _ in 0..3 {
        app.get_with(&path, &ann.bearer).await.assert_status_is_ok();
    }
    app.client
        .get("/no/such/ann@example.com/path")
        .send()
        .await
        .assert_status(StatusCode::NOT_FOUND);
    app.login_form("username=ann%40example.com&password=wrong+horse")
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    let after = scrape(&app).await;

    assert!(
        value(&after, get_post) >= value(&before, get_post) + 3.0,
        "{get_post} did not move by 3:\n{after}"
    );
    for expected in [
        r#"http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/posts/{id}",le="#,
        r#"warden_logins_total{grant="password",outcome="success"}"#,
        r#"warden_logins_total{grant="password",outcome="invalid_grant"}"#,
        r#"warden_db_pool_connections{state="idle"}"#,
        r#"warden_db_pool_connections{state="in_use"}"#,
        "warden_password_hash_wait_seconds_bucket",
        "# HELP http_requests_total",
    ] {
        assert!(after.contains(expected), "no {expected} in:\n{after}");
    }
    for secret in [
        "ann@example.com",
        ann.access_token.as_str(),
        ann.refresh_token.as_str(),
        "/no/such",
        path.as_str(),
    ] {
        assert!(!after.contains(secret), "{secret:?} is in the metrics");
    }
}
