//! Sessions: refresh rotation and theft detection, logout, and tokens that stop working at once.

use futures_util::future::join_all;
use poem::http::StatusCode;
use serde_json::Value;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    a_login_hands_out_a_refresh_token_that_rotates,
    a_replayed_refresh_token_ends_the_whole_session,
    concurrent_refreshes_with_one_token_let_exactly_one_through,
    bad_refresh_requests_follow_rfc_6749,
    refreshing_may_narrow_the_scopes_but_not_widen_them,
    logging_out_ends_the_session_at_once_and_only_that_one,
);

async fn registered(app: &TestApp, email: &str) -> Value {
    grant(&app.user(email).await)
}

/// A login's tokens as its token answer had them, to compare with refreshes' answers.
fn grant(user: &TestUser) -> Value {
    serde_json::json!({
        "access_token": user.access_token,
        "refresh_token": user.refresh_token,
        "scope": user.scope,
    })
}

fn field<'a>(grant: &'a Value, name: &str) -> &'a str {
    grant[name].as_str().unwrap()
}

fn bearer(grant: &Value) -> String {
    format!("Bearer {}", field(grant, "access_token"))
}

async fn a_login_hands_out_a_refresh_token_that_rotates(app: TestApp) {
    let first = registered(&app, "ann@example.com").await;
    let refresh_token = field(&first, "refresh_token");
    assert_eq!(refresh_token.len(), 43, "256 random bits, base64url");

    let response = app.refresh(refresh_token).await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(header(&response, "pragma").as_deref(), Some("no-cache"));
    let second = json_of(response).await;
    assert_eq!(second["token_type"], "bearer");
    assert_eq!(second["scope"], first["scope"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(
        claims_of(field(&second, "access_token"))["sid"],
        claims_of(field(&first, "access_token"))["sid"],
        "a refresh stays in its session"
    );

    app.get_with("/users/me", &bearer(&second))
        .await
        .assert_status_is_ok();
    let third = app.refresh(field(&second, "refresh_token")).await;
    third.assert_status_is_ok();
}

async fn a_replayed_refresh_token_ends_the_whole_session(app: TestApp) {
    let first = registered(&app, "ann@example.com").await;
    let other_session = grant(&app.log_in("ann@example.com", PASSWORD, None).await);
    let second = json_of(app.refresh(field(&first, "refresh_token")).await).await;

    // The spent token again: theft.
    let body = assert_oauth_error(
        app.refresh(field(&first, "refresh_token")).await,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        body["error_description"],
        "the refresh token is invalid, expired or revoked"
    );

    // Every token of that session is dead, the newest included...
    assert_oauth_error(
        app.refresh(field(&second, "refresh_token")).await,
        "invalid_grant",
    )
    .await;
    for grant in [&first, &second] {
        let response = app.get_with("/users/me", &bearer(grant)).await;
        assert_detail(
            response,
            StatusCode::UNAUTHORIZED,
            "Could not validate credentials",
        )
        .await;
    }
    // ...and only that session's.
    app.get_with("/users/me", &bearer(&other_session))
        .await
        .assert_status_is_ok();
    app.refresh(field(&other_session, "refresh_token"))
        .await
        .assert_status_is_ok();
}

async fn concurrent_refreshes_with_one_token_let_exactly_one_through(app: TestApp) {
    let grant = registered(&app, "ann@example.com").await;
    let token = field(&grant, "refresh_token");

    let responses = join_all((0..8).map(|_| app.refresh(token))).await;

    let mut ok = 0;
    for response in responses {
        if response.0.status() == StatusCode::OK {
            ok += 1;
        } else {
            assert_oauth_error(response, "invalid_grant").await;
        }
    }
    assert_eq!(ok, 1, "exactly one refresh may win");
}

async fn bad_refresh_requests_follow_rfc_6749(app: TestApp) {
    let grant = registered(&app, "ann@example.com").await;

    assert_oauth_error(
        app.login_form("grant_type=refresh_token").await,
        "invalid_request",
    )
    .await;
    assert_oauth_error(app.refresh("not-a-token-we-issued").await, "invalid_grant").await;
    // An access token is no refresh token.
    assert_oauth_error(
        app.refresh(field(&grant, "access_token")).await,
        "invalid_grant",
    )
    .await;
    let repeated = format!(
        "grant_type=refresh_token&refresh_token={0}&refresh_token={0}",
        field(&grant, "refresh_token")
    );
    assert_oauth_error(app.login_form(&repeated).await, "invalid_request").await;
    // None of this spent the real token.
    app.refresh(field(&grant, "refresh_token"))
        .await
        .assert_status_is_ok();
}

async fn refreshing_may_narrow_the_scopes_but_not_widen_them(app: TestApp) {
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let response = app
        .login_form("username=ann%40example.com&password=correct+horse&scope=profile+posts%3Aread")
        .await;
    let login = json_of(response).await;

    let narrower = app
        .login_form(&format!(
            "grant_type=refresh_token&refresh_token={}&scope=posts%3Aread",
            field(&login, "refresh_token")
        ))
        .await;
    narrower.assert_status_is_ok();
    let narrower = json_of(narrower).await;
    assert_eq!(narrower["scope"], "posts:read");

    let wider = app
        .login_form(&format!(
            "grant_type=refresh_token&refresh_token={}&scope=posts%3Awrite",
            field(&narrower, "refresh_token")
        ))
        .await;
    assert_oauth_error(wider, "invalid_scope").await;

    // Without a scope, a refresh gets the login's scopes back.
    let again = json_of(app.refresh(field(&narrower, "refresh_token")).await).await;
    assert_eq!(again["scope"], "profile posts:read");
}

async fn logging_out_ends_the_session_at_once_and_only_that_one(app: TestApp) {
    let leaving = registered(&app, "ann@example.com").await;
    let staying = grant(&app.log_in("ann@example.com", PASSWORD, None).await);

    let response = app
        .client
        .post("/logout")
        .header("authorization", bearer(&leaving))
        .send()
        .await;
    response.assert_status(StatusCode::NO_CONTENT);

    let response = app.get_with("/users/me", &bearer(&leaving)).await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_detail(
        response,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    assert_oauth_error(
        app.refresh(field(&leaving, "refresh_token")).await,
        "invalid_grant",
    )
    .await;
    let again = app
        .client
        .post("/logout")
        .header("authorization", bearer(&leaving))
        .send()
        .await;
    again.assert_status(StatusCode::UNAUTHORIZED);

    app.get_with("/users/me", &bearer(&staying))
        .await
        .assert_status_is_ok();

    let anonymous = app.client.post("/logout").send().await;
    assert_detail(anonymous, StatusCode::UNAUTHORIZED, "Not authenticated").await;
}
