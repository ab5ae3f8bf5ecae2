//! The body deadline as a client sees it: a body that has not arrived
//! `HTTP_BODY_TIMEOUT_SECONDS` after its head is answered 408, in the endpoint's error shape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::Body;
use poem::http::StatusCode;
use tokio::io::AsyncWriteExt;
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let app = TestApp::on(db, &["--http-body-timeout-seconds", "1"]);
    for (path, content_type) in [
        ("/users", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
    ] {
        // The body's first byte arrives; the rest never does.
        let (mut sender, body) = tokio::io::duplex(64);
        sender.write_all(b"{").await.unwrap();
        let started = Instant::now();
        let response = app
            .client
            .post(path)
            .content_type(content_type)
            .header("content-length", 60_000)
            .body(Body::from_async_read(body))
            .send()
            .await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{path}: {took:?}"
        );
        response.assert_status(StatusCode::REQUEST_TIMEOUT);
        let body = json_of(response).await;
        let message = "the request body did not arrive within 1 s";
        if path == "/login" {
            assert_eq!(body["error"], "invalid_request", "{body}");
            assert_eq!(body["error_description"], message, "{body}");
        } else {
            assert_eq!(body, serde_json::json!({ "detail": message }));
        }
        drop(sender);
    }
}
