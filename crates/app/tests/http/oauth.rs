//! Interoperability endpoints (contract section 13): the server's metadata (RFC 8414),
//! revocation (RFC 7009) and introspection (RFC 7662).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::test::TestResponse;
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    the_metadata_describes_the_endpoints_with_absolute_urls,
    revoking_an_access_token_ends_its_session,
    revoking_a_refresh_token_ends_its_session,
    revocation_answers_alike_for_unknown_tokens_and_needs_a_token,
    introspection_describes_a_token_that_would_be_accepted,
    introspection_reports_every_unacceptable_token_as_inactive,
    introspection_is_for_callers_holding_tokens_introspect,
);

async fn form(app: &TestApp, path: &str, body: &str, authorization: Option<&str>) -> TestResponse {
    let mut request = app
        .client
        .post(path)
        .content_type("application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await
}

async fn metadata(app: &TestApp, host: &str) -> TestResponse {
    app.client
        .get("/.well-known/oauth-authorization-server")
        .header("host", host)
        .send()
        .await
}

async fn the_metadata_describes_the_endpoints_with_absolute_urls(app: TestApp) {
    let response = metadata(&app, "api.example.test:8443").await;
    response.assert_status_is_ok();
    let document = json_of(response).await;
    assert_eq!(
        document,
        json!({
            "issuer": "warden",
            "token_endpoint": "http://api.example.test:8443/login",
            "revocation_endpoint": "http://api.example.test:8443/revoke",
            "introspection_endpoint": "http://api.example.test:8443/introspect",
            "grant_types_supported": [
                "password",
                "refresh_token",
                "urn:warden:params:oauth:grant-type:mfa-otp"
            ],
            "scopes_supported": ["profile", "posts:read", "posts:write", "admin", "tokens:introspect"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
        })
    );

    // With PUBLIC_URL (a trailing slash is dropped), whatever the Host, and the issuer is
    // whatever JWT_ISSUER says.
    let public = TestApp::on(
        Arc::clone(&app.db),
        &[
            "--public-url",
            "https://auth.example.com/",
            "--jwt-issuer",
            "https://auth.example.com",
        ],
    );
    let document = json_of(metadata(&public, "10.0.0.7:8000").await).await;
    assert_eq!(document["issuer"], "https://auth.example.com");
    assert_eq!(document["token_endpoint"], "https://auth.example.com/login");
    assert_eq!(
        document["introspection_endpoint"],
        "https://auth.example.com/introspect"
    );

    // Without PUBLIC_URL, a Host that is not a host gives no URLs.
    let bad = metadata(&app, "bad host/x").await;
    bad.assert_status(StatusCode::BAD_REQUEST);
    assert!(json_of(bad).await["detail"].is_string());
}

async fn revoking_an_access_token_ends_its_session(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let other = app.log_in_again(&ann, None).await;
    let response = form(
        &app,
        "/revoke",
        &format!(
            "token={}&token_type_hint=access_token",
            urlencode(&ann.access_token)
        ),
        None,
    )
    .await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert!(
        response
            .0
            .into_body()
            .into_bytes()
            .await
            .unwrap()
            .is_empty()
    );

    let refused = app.get_with("/users/me", &ann.bearer).await;
    assert_detail(
        refused,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    assert_oauth_error(app.refresh(&ann.refresh_token).await, "invalid_grant").await;
    // Only that login.
    app.get_with("/users/me", &other.bearer)
        .await
        .assert_status_is_ok();
}

async fn revoking_a_refresh_token_ends_its_session(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    // A spent refresh token still names its session.
    let refreshed = json_of(app.refresh(&ann.refresh_token).await).await;
    form(
        &app,
        "/revoke",
        &format!("token={}", urlencode(&ann.refresh_token)),
        None,
    )
    .await
    .assert_status_is_ok();
    let bearer = format!("Bearer {}", refreshed["access_token"].as_str().unwrap());
    assert_eq!(
        app.get_with("/users/me", &bearer).await.0.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_oauth_error(
        app.refresh(refreshed["refresh_token"].as_str().unwrap())
            .await,
        "invalid_grant",
    )
    .await;
}

async fn revocation_answers_alike_for_unknown_tokens_and_needs_a_token(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    for token in ["not-a-token", "eyJhbGciOiJub25lIn0.e30.", &"x".repeat(5000)] {
        let response = form(
            &app,
            "/revoke",
            &format!("token={}", urlencode(token)),
            None,
        )
        .await;
        response.assert_status_is_ok();
    }
    for body in ["", "token=", "token_type_hint=access_token"] {
        assert_oauth_error(form(&app, "/revoke", body, None).await, "invalid_request").await;
    }
    let repeated = format!("token={0}&token={0}", urlencode(&ann.access_token));
    assert_oauth_error(
        form(&app, "/revoke", &repeated, None).await,
        "invalid_request",
    )
    .await;
    let json = app
        .client
        .post("/revoke")
        .body_json(&json!({"token": ann.access_token}))
        .send()
        .await;
    assert_oauth_error(json, "invalid_request").await;
    // None of it touched Ann's session.
    app.get_with("/users/me", &ann.bearer)
        .await
        .assert_status_is_ok();
    let get = app.client.get("/revoke").send().await;
    get.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&get, "allow").as_deref(), Some("POST"));
}

async fn introspect(app: &TestApp, caller: &TestUser, token: &str) -> Value {
    let response = form(
        app,
        "/introspect",
        &format!("token={}", urlencode(token)),
        Some(&caller.bearer),
    )
    .await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    json_of(response).await
}

async fn introspection_describes_a_token_that_would_be_accepted(app: TestApp) {
    let server = app.admin("resource-server@example.com").await;
    assert!(
        server
            .scope
            .split(' ')
            .any(|scope| scope == "tokens:introspect")
    );
    let ann = app
        .user_with_scope("ann@example.com", Some("profile posts:read"))
        .await;
    let claims = claims_of(&ann.access_token);

    let info = introspect(&app, &server, &ann.access_token).await;
    assert_eq!(
        info,
        json!({
            "active": true,
            "scope": "profile posts:read",
            "client_id": "warden",
            "username": "ann@example.com",
            "token_type": "bearer",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "sub": ann.id.to_string(),
            "aud": "warden",
            "iss": "warden",
            "jti": claims["jti"],
            "sid": claims["sid"],
        })
    );
}

async fn introspection_reports_every_unacceptable_token_as_inactive(app: TestApp) {
    let server = app.admin("resource-server@example.com").await;
    let ann = app.user("ann@example.com").await;
    let inactive = json!({"active": false});
    // A refresh token is not accepted by resource servers; junk and forged tokens neither.
    let forged = forge(
        &jsonwebtoken::Header::default(),
        &claims_of(&ann.access_token),
        "another-secret-of-more-than-32-bytes!!",
    );
    for token in [ann.refresh_token.as_str(), "junk", forged.as_str()] {
        assert_eq!(introspect(&app, &server, token).await, inactive, "{token}");
    }
    // Logged out: inactive at once.
    app.call(poem::http::Method::POST, "/logout", &ann.bearer, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(introspect(&app, &server, &ann.access_token).await, inactive);
    let missing = form(&app, "/introspect", "", Some(&server.bearer)).await;
    assert_oauth_error(missing, "invalid_request").await;
}

async fn introspection_is_for_callers_holding_tokens_introspect(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let body = format!("token={}", urlencode(&ann.access_token));
    // Without a bearer token (or with another scheme), the 401 of every protected operation.
    for authorization in [None, Some("Basic Og==")] {
        let unauthenticated = form(&app, "/introspect", &body, authorization).await;
        assert_eq!(
            header(&unauthenticated, "www-authenticate").as_deref(),
            Some("Bearer")
        );
        assert_detail(
            unauthenticated,
            StatusCode::UNAUTHORIZED,
            "Not authenticated",
        )
        .await;
    }
    let by_user = form(&app, "/introspect", &body, Some(&ann.bearer)).await;
    by_user.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(
        header(&by_user, "www-authenticate").as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="tokens:introspect""#)
    );
    // An admin's token without the scope is refused too.
    let admin = app.admin("root@example.com").await;
    let narrow = app.log_in_again(&admin, Some("admin")).await;
    let by_admin = form(&app, "/introspect", &body, Some(&narrow.bearer)).await;
    by_admin.assert_status(StatusCode::FORBIDDEN);
}
