//! Account safety (contract section 5): what a stolen access token cannot do, and what recovery
//! undoes. Each test is named after the attack it stops (docs/security.md lists them).

use std::time::Duration;

use poem::http::{Method, StatusCode};
use serde_json::json;
use warden_adapters::Backend;
use warden_app::testing::MailCatcher;

use crate::mail::{mails, me, post};
use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    warden_adapters::testing::with_backend =>
    a_stolen_access_token_cannot_change_the_email,
    a_stolen_access_token_cannot_delete_the_account,
    a_stolen_access_token_cannot_mint_a_personal_token,
    a_pending_email_change_dies_with_a_password_change,
    a_reset_ends_sessions_personal_tokens_and_pending_changes,
    a_reset_token_mailed_to_the_old_address_dies_with_an_email_change,
    email_change_mail_is_throttled_per_address_and_per_target_email,
    an_address_that_could_never_be_mailed_is_refused,
);

const INCORRECT: &str = "Incorrect password";

async fn change_email(app: &TestApp, user: &TestUser, email: &str) -> poem::test::TestResponse {
    app.call(
        Method::PATCH,
        "/users/me",
        &user.bearer,
        Some(json!({"email": email, "current_password": PASSWORD})),
    )
    .await
}

async fn a_stolen_access_token_cannot_change_the_email(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann@example.com").await;
    let guessed = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "thief@example.com", "current_password": "a guess"})),
        )
        .await;
    assert_detail(guessed, StatusCode::BAD_REQUEST, INCORRECT).await;
    let without = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "thief@example.com"})),
        )
        .await;
    without.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(me(&app, &ann).await["email"], json!("ann@example.com"));
}

async fn a_stolen_access_token_cannot_delete_the_account(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann@example.com").await;
    let guessed = app
        .call(
            Method::DELETE,
            "/users/me",
            &ann.bearer,
            Some(json!({"current_password": "a guess"})),
        )
        .await;
    assert_detail(guessed, StatusCode::BAD_REQUEST, INCORRECT).await;
    let without = app
        .call(Method::DELETE, "/users/me", &ann.bearer, None)
        .await;
    assert!(
        without.0.status().is_client_error(),
        "{}",
        without.0.status()
    );
    me(&app, &ann).await;
    app.log_in("ann@example.com", PASSWORD, None).await;
}

async fn a_stolen_access_token_cannot_mint_a_personal_token(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann@example.com").await;
    let guessed = app
        .call(
            Method::POST,
            "/users/me/tokens",
            &ann.bearer,
            Some(json!({
                "name": "backdoor", "scopes": "profile", "expires_in_days": 365,
                "current_password": "a guess",
            })),
        )
        .await;
    assert_detail(guessed, StatusCode::BAD_REQUEST, INCORRECT).await;
    let listed = app.get_with("/users/me/tokens", &ann.bearer).await;
    assert_eq!(json_of(listed).await, json!([]));
}

async fn a_pending_email_change_dies_with_a_password_change(backend: Backend) {
    // The thief knew the old password (phished, say) and asked to move the account; the owner
    // changes the password before the thief confirms.
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("ann@example.com").await;
    let thief = app.log_in_again(&ann, None).await;
    change_email(&app, &thief, "thief@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    let token = mails(
        &catcher,
        "thief@example.com",
        "Confirm your new email address",
        1,
    )
    .await[0]
        .token();

    app.call(
        Method::PUT,
        "/users/me/password",
        &ann.bearer,
        Some(json!({"current_password": PASSWORD, "new_password": "a brand new password"})),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    let confirmed = post(&app, "/email-change/confirm", json!({ "token": token })).await;
    assert_detail(
        confirmed,
        StatusCode::BAD_REQUEST,
        "invalid or expired token",
    )
    .await;
    assert_eq!(me(&app, &ann).await["email"], json!("ann@example.com"));
}

async fn a_reset_ends_sessions_personal_tokens_and_pending_changes(backend: Backend) {
    // Pre-hijack: the attacker registers the victim's address first (unverified), mints a
    // personal token and asks to move the account elsewhere; the victim then recovers it by
    // a reset through the mailbox.
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let attacker = app.user("victim@example.com").await;
    let created = app
        .call(
            Method::POST,
            "/users/me/tokens",
            &attacker.bearer,
            Some(json!({
                "name": "kept", "scopes": "profile posts:read", "expires_in_days": 365,
                "current_password": PASSWORD,
            })),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let pat = format!(
        "Bearer {}",
        json_of(created).await["token"].as_str().unwrap()
    );
    app.get_with("/users/me", &pat).await.assert_status_is_ok();
    change_email(&app, &attacker, "attacker@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    let change = mails(
        &catcher,
        "attacker@example.com",
        "Confirm your new email address",
        1,
    )
    .await[0]
        .token();

    post(
        &app,
        "/password-reset",
        json!({"email": "victim@example.com"}),
    )
    .await
    .assert_status(StatusCode::ACCEPTED);
    let reset = mails(
        &catcher,
        "victim@example.com",
        "Reset your Warden password",
        1,
    )
    .await[0]
        .token();
    post(
        &app,
        "/password-reset/confirm",
        json!({"token": reset, "new_password": "the victim's own password"}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    for bearer in [&pat, &attacker.bearer] {
        let refused = app.get_with("/users/me", bearer).await;
        refused.assert_status(StatusCode::UNAUTHORIZED);
    }
    let confirmed = post(&app, "/email-change/confirm", json!({ "token": change })).await;
    assert_detail(
        confirmed,
        StatusCode::BAD_REQUEST,
        "invalid or expired token",
    )
    .await;
    let victim = app
        .log_in("victim@example.com", "the victim's own password", None)
        .await;
    assert_eq!(
        me(&app, &victim).await["email"],
        json!("victim@example.com")
    );
    let tokens = app.get_with("/users/me/tokens", &victim.bearer).await;
    assert_eq!(json_of(tokens).await, json!([]));
}

async fn a_reset_token_mailed_to_the_old_address_dies_with_an_email_change(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("old@example.com").await;
    post(&app, "/password-reset", json!({"email": "old@example.com"}))
        .await
        .assert_status(StatusCode::ACCEPTED);
    let reset =
        mails(&catcher, "old@example.com", "Reset your Warden password", 1).await[0].token();

    change_email(&app, &ann, "new@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    let change = mails(
        &catcher,
        "new@example.com",
        "Confirm your new email address",
        1,
    )
    .await[0]
        .token();
    post(&app, "/email-change/confirm", json!({ "token": change }))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let used = post(
        &app,
        "/password-reset/confirm",
        json!({"token": reset, "new_password": "whoever reads the old mailbox"}),
    )
    .await;
    assert_detail(used, StatusCode::BAD_REQUEST, "invalid or expired token").await;
    app.log_in("new@example.com", PASSWORD, None).await;
}

async fn email_change_mail_is_throttled_per_address_and_per_target_email(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(
        backend,
        &catcher,
        &[
            "--mail-requests-per-email",
            "2",
            "--mail-requests-per-address",
            "4",
        ],
    )
    .await;
    let ann = app.user("ann@example.com").await;
    for _ in 0..2 {
        change_email(&app, &ann, "target@example.com")
            .await
            .assert_status(StatusCode::ACCEPTED);
    }
    let per_email = change_email(&app, &ann, "TARGET@example.com").await;
    per_email.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&per_email, "retry-after").is_some());
    change_email(&app, &ann, "other@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    let per_address = change_email(&app, &ann, "third@example.com").await;
    per_address.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(json_of(per_address).await["detail"].is_string());
    // Two confirmation mails to the target and no more, whatever was asked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    mails(
        &catcher,
        "target@example.com",
        "Confirm your new email address",
        2,
    )
    .await;
}

async fn an_address_that_could_never_be_mailed_is_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    let quoted = app.register("\"ann smith\"@example.com", PASSWORD).await;
    quoted.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let ann = app.user("ann@example.com").await;
    let changed = change_email(&app, &ann, "\"ann\"@example.com").await;
    changed.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(me(&app, &ann).await["email"], json!("ann@example.com"));
}
