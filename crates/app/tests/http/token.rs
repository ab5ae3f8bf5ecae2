//! `POST /token` (contract section 2): the token endpoint under the FastAPI tutorial's name,
//! the same operation as `POST /login` in every respect.

use std::sync::Arc;

use poem::http::StatusCode;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app => the_token_url_of_the_fastapi_tutorial_is_the_token_endpoint,
);

async fn token_form(app: &TestApp, form: &str) -> poem::test::TestResponse {
    app.client
        .post("/token")
        .content_type("application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
}

async fn the_token_url_of_the_fastapi_tutorial_is_the_token_endpoint(plain: TestApp) {
    let app = TestApp::on(
        Arc::clone(&plain.db),
        &["--login-max-failures-per-username", "2"],
    );
    drop(plain);
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    // The password grant, with `grant_type` left out as the tutorial's form does.
    let response = token_form(&app, "username=ann%40example.com&password=correct+horse").await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let grant = json_of(response).await;
    assert_eq!(grant["token_type"], "bearer");
    let bearer = format!("Bearer {}", grant["access_token"].as_str().unwrap());
    app.get_with("/users/me", &bearer)
        .await
        .assert_status_is_ok();

    // The refresh grant.
    let refresh = format!(
        "grant_type=refresh_token&refresh_token={}",
        urlencode(grant["refresh_token"].as_str().unwrap())
    );
    token_form(&app, &refresh).await.assert_status_is_ok();

    // Errors in RFC 6749's shape, framework errors included.
    assert_oauth_error(
        token_form(&app, "username=ann%40example.com&password=wrong+horse").await,
        "invalid_grant",
    )
    .await;
    let wrong_type = app
        .client
        .post("/token")
        .content_type("application/json")
        .body("{}")
        .send()
        .await;
    assert_oauth_error(wrong_type, "invalid_request").await;
    let response = app.client.get("/token").send().await;
    response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow").as_deref(), Some("POST"));
    assert_eq!(json_of(response).await["error"], "invalid_request");

    // One failed-login budget of two for both names: one failure at /token, one at /login,
    // and the third attempt is throttled at /token.
    assert_oauth_error(
        app.login_form("username=ann%40example.com&password=wrong+horse")
            .await,
        "invalid_grant",
    )
    .await;
    token_form(&app, "username=ann%40example.com&password=wrong+horse")
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
}
