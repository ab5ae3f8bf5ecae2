//! The error contract where the framework, not an operation, answers: undeclared methods,
//! oversized bodies, and the token endpoint's own error shape.

use poem::http::{Method, StatusCode};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    an_undeclared_method_is_405_with_allow,
    the_token_endpoint_answers_framework_errors_in_its_own_shape,
);

async fn an_undeclared_method_is_405_with_allow(app: TestApp) {
    for (method, path, allow) in [
        (Method::PATCH, "/posts", "GET, POST"),
        (Method::POST, "/posts/7", "DELETE, GET, PUT"),
        (Method::PUT, "/vote/", "POST"),
        (Method::DELETE, "/users", "POST"),
        (Method::POST, "/users/me", "DELETE, GET, PATCH"),
        (Method::POST, "/health/live", "GET"),
        (Method::DELETE, "/openapi.json", "GET"),
    ] {
        let response = app.client.request(method.clone(), path).send().await;
        assert_eq!(
            header(&response, "allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
        assert_detail(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        )
        .await;
    }
}

async fn the_token_endpoint_answers_framework_errors_in_its_own_shape(app: TestApp) {
    let response = app.client.get("/login").send().await;
    response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow").as_deref(), Some("POST"));
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(json_of(response).await["error"], "invalid_request");

    let big = format!("username=a&password={}", "x".repeat(70 * 1024));
    let response = app
        .client
        .post("/login")
        .content_type("application/x-www-form-urlencoded")
        .header("content-length", big.len())
        .body(big)
        .send()
        .await;
    response.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(header(&response, "pragma").as_deref(), Some("no-cache"));
    let body = json_of(response).await;
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        body["error_description"],
        "the request body is larger than 64 KiB"
    );
}
