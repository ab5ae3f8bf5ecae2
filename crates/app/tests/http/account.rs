//! Your own account: email, password, deletion; and what an admin may do to accounts.

use poem::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    changing_your_email_changes_how_you_log_in,
    changing_your_password_ends_your_other_sessions,
    a_wrong_current_password_changes_nothing,
    deleting_your_account_removes_it_with_its_posts_and_votes,
    admins_list_users_and_nobody_else_may,
    disabling_a_user_stops_their_live_tokens_and_logins,
    admins_promote_and_demote_with_immediate_effect,
    admins_cannot_lock_themselves_out,
);

async fn create_post(app: &TestApp, bearer: &str, title: &str) -> poem::test::TestResponse {
    let body = json!({"title": title, "content": "x"});
    app.call(Method::POST, "/posts", bearer, Some(body)).await
}

async fn changing_your_email_changes_how_you_log_in(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let id = ann.id;
    app.register("bob@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    let response = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": " Ann@New.example ", "current_password": PASSWORD})),
        )
        .await;
    response.assert_status_is_ok();
    let me = json_of(response).await;
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], "Ann@New.example");

    app.log_in("ann@new.example", PASSWORD, None).await;
    let old = app
        .login_form("username=ann%40example.com&password=correct+horse")
        .await;
    assert_oauth_error(old, "invalid_grant").await;

    let taken = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "BOB@example.com", "current_password": PASSWORD})),
        )
        .await;
    assert_detail(
        taken,
        StatusCode::CONFLICT,
        "a user with this email already exists",
    )
    .await;
    let invalid = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "nope", "current_password": PASSWORD})),
        )
        .await;
    invalid.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_of(invalid).await["detail"]
            .as_str()
            .unwrap()
            .starts_with("email")
    );
    assert_eq!(
        json_of(app.get_with("/users/me", &ann.bearer).await).await["email"],
        "Ann@New.example"
    );
}

async fn changing_your_password_ends_your_other_sessions(app: TestApp) {
    let current = app.user("ann@example.com").await;
    let other = app.log_in("ann@example.com", PASSWORD, None).await;
    let other_bearer = format!("Bearer {}", &other.access_token);

    let body = json!({"current_password": PASSWORD, "new_password": "battery staple"});
    let response = app
        .call(
            Method::PUT,
            "/users/me/password",
            &current.bearer,
            Some(body),
        )
        .await;
    response.assert_status(StatusCode::NO_CONTENT);

    // The other session is over, tokens and refresh token alike; this one goes on.
    app.get_with("/users/me", &other_bearer)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_oauth_error(app.refresh(&other.refresh_token).await, "invalid_grant").await;
    app.get_with("/users/me", &current.bearer)
        .await
        .assert_status_is_ok();

    assert_oauth_error(
        app.login_form("username=ann%40example.com&password=correct+horse")
            .await,
        "invalid_grant",
    )
    .await;
    app.log_in("ann@example.com", "battery staple", None).await;
}

async fn a_wrong_current_password_changes_nothing(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let other = app.log_in("ann@example.com", PASSWORD, None).await;

    let wrong = json!({"current_password": "not my password", "new_password": "battery staple"});
    let response = app
        .call(Method::PUT, "/users/me/password", &ann.bearer, Some(wrong))
        .await;
    assert_detail(response, StatusCode::BAD_REQUEST, "Incorrect password").await;
    let weak = json!({"current_password": PASSWORD, "new_password": "short"});
    let response = app
        .call(Method::PUT, "/users/me/password", &ann.bearer, Some(weak))
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_of(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("new_password")
    );

    app.log_in("ann@example.com", PASSWORD, None).await;
    app.refresh(&other.refresh_token)
        .await
        .assert_status_is_ok();
}

async fn deleting_your_account_removes_it_with_its_posts_and_votes(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let ann_id = ann.id;
    let bob = app.user("bob@example.com").await;
    let anns_post = json_of(create_post(&app, &ann.bearer, "Ann's").await).await;
    let bobs_post = json_of(create_post(&app, &bob.bearer, "Bob's").await).await;
    app.call(
        Method::POST,
        "/vote",
        &ann.bearer,
        Some(json!({"post_id": bobs_post["id"], "dir": 1})),
    )
    .await
    .assert_status(StatusCode::CREATED);

    app.call(
        Method::DELETE,
        "/users/me",
        &ann.bearer,
        Some(json!({"current_password": PASSWORD})),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    app.get_with("/users/me", &ann.bearer)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert_detail(
        app.get_with(&format!("/users/{ann_id}"), &bob.bearer).await,
        StatusCode::NOT_FOUND,
        &format!("User with id: {ann_id} does not exist"),
    )
    .await;
    app.get_with(&format!("/posts/{}", anns_post["id"]), &bob.bearer)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let bobs_now = json_of(
        app.get_with(&format!("/posts/{}", bobs_post["id"]), &bob.bearer)
            .await,
    )
    .await;
    assert_eq!(bobs_now["votes"], 0);
    assert_oauth_error(
        app.login_form("username=ann%40example.com&password=correct+horse")
            .await,
        "invalid_grant",
    )
    .await;
    // The address is free again.
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn admins_list_users_and_nobody_else_may(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let admin_id = admin.id;
    let ann = app.user("ann@example.com").await;
    app.user("bob@example.com").await;

    let response = app
        .get_with("/admin/users?limit=2&skip=0", &admin.bearer)
        .await;
    response.assert_status_is_ok();
    let users = json_of(response).await;
    assert_eq!(users.as_array().unwrap().len(), 2);
    assert_eq!(users[0]["id"], admin_id);
    assert_eq!(users[0]["is_admin"], true);
    assert_eq!(users[1]["email"], "ann@example.com");
    assert_eq!(users[1]["is_active"], true);
    assert_eq!(users[1]["is_admin"], false);
    let rest = json_of(app.get_with("/admin/users?skip=2", &admin.bearer).await).await;
    assert_eq!(rest.as_array().unwrap().len(), 1);

    let response = app.get_with("/admin/users", &ann.bearer).await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="admin""#)
    );
    assert_detail(response, StatusCode::FORBIDDEN, "Not enough permissions").await;
    // Nor may an admin's token that was not granted the scope.
    let admin_profile_only = app.log_in_again(&admin, Some("profile")).await;
    app.get_with("/admin/users", &admin_profile_only.bearer)
        .await
        .assert_status(StatusCode::FORBIDDEN);
}

async fn disabling_a_user_stops_their_live_tokens_and_logins(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let bob = app.user("bob@example.com").await;
    let bob_id = bob.id;
    let bobs_session = app.log_in("bob@example.com", PASSWORD, None).await;

    let response = app
        .call(
            Method::PATCH,
            &format!("/admin/users/{bob_id}"),
            &admin.bearer,
            Some(json!({"is_active": false})),
        )
        .await;
    response.assert_status_is_ok();
    let updated = json_of(response).await;
    assert_eq!(updated["is_active"], false);
    assert_eq!(updated["is_admin"], false);

    assert_detail(
        app.get_with("/users/me", &bob.bearer).await,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    assert_oauth_error(
        app.refresh(&bobs_session.refresh_token).await,
        "invalid_grant",
    )
    .await;
    let refused = app
        .login_form("username=bob%40example.com&password=correct+horse")
        .await;
    let wrong = app
        .login_form("username=bob%40example.com&password=wrong+password")
        .await;
    assert_eq!(
        json_of(refused).await,
        json_of(wrong).await,
        "a disabled account must look like a wrong password"
    );

    // Enabled again, Bob logs in anew; the old sessions stay ended.
    app.call(
        Method::PATCH,
        &format!("/admin/users/{bob_id}"),
        &admin.bearer,
        Some(json!({"is_active": true})),
    )
    .await
    .assert_status_is_ok();
    app.get_with("/users/me", &bob.bearer)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.log_in("bob@example.com", PASSWORD, None).await;

    let missing = app
        .call(
            Method::PATCH,
            "/admin/users/987654",
            &admin.bearer,
            Some(json!({"is_active": false})),
        )
        .await;
    assert_detail(
        missing,
        StatusCode::NOT_FOUND,
        "User with id: 987654 does not exist",
    )
    .await;
}

async fn admins_promote_and_demote_with_immediate_effect(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let bob = app.user("bob@example.com").await;
    let bob_id = bob.id;

    app.call(
        Method::PATCH,
        &format!("/admin/users/{bob_id}"),
        &admin.bearer,
        Some(json!({"is_admin": true})),
    )
    .await
    .assert_status_is_ok();
    let bobs_grant = app.log_in("bob@example.com", PASSWORD, None).await;
    assert_eq!(
        bobs_grant.scope,
        "profile posts:read posts:write admin tokens:introspect"
    );
    let bob = bobs_grant.clone();
    app.get_with("/admin/users", &bob.bearer)
        .await
        .assert_status_is_ok();

    app.call(
        Method::PATCH,
        &format!("/admin/users/{bob_id}"),
        &admin.bearer,
        Some(json!({"is_admin": false})),
    )
    .await
    .assert_status_is_ok();
    // His token still says `admin`, but he no longer is one.
    app.get_with("/admin/users", &bob.bearer)
        .await
        .assert_status(StatusCode::FORBIDDEN);
    app.get_with("/users/me", &bob.bearer)
        .await
        .assert_status_is_ok();
    let refreshed = json_of(app.refresh(&bobs_grant.refresh_token).await).await;
    assert_eq!(refreshed["scope"], "profile posts:read posts:write");
}

async fn admins_cannot_lock_themselves_out(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let admin_id = admin.id;
    for body in [json!({"is_active": false}), json!({"is_admin": false})] {
        let response = app
            .call(
                Method::PATCH,
                &format!("/admin/users/{admin_id}"),
                &admin.bearer,
                Some(body),
            )
            .await;
        assert_detail(
            response,
            StatusCode::CONFLICT,
            "admins cannot disable or demote themselves",
        )
        .await;
    }
    let me = json_of(app.get_with("/users/me", &admin.bearer).await).await;
    assert_eq!(
        (me["is_active"].clone(), me["is_admin"].clone()),
        (json!(true), json!(true))
    );
}
