//! Personal access tokens (contract section 13): made, listed and revoked with a password
//! login; accepted by what their scopes allow; refused for the account's security; dead at once
//! when revoked, or while the account is disabled or gone.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    a_token_is_shown_once_and_listed_without_its_secret,
    a_token_works_where_its_scopes_allow_and_no_further,
    a_token_cannot_touch_the_accounts_security,
    a_revoked_token_fails_at_once_and_only_its_owner_revokes_it,
    a_token_dies_with_its_accounts_access,
    bad_token_requests_are_422,
    introspection_and_revocation_know_personal_tokens,
);

async fn create(app: &TestApp, user: &TestUser, scopes: &str) -> Value {
    let response = app
        .call(
            Method::POST,
            "/users/me/tokens",
            &user.bearer,
            Some(json!({"name": "deploy script", "scopes": scopes, "expires_in_days": 30, "current_password": PASSWORD})),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    json_of(response).await
}

fn bearer(token: &Value) -> String {
    format!("Bearer {}", token["token"].as_str().unwrap())
}

async fn status(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> StatusCode {
    app.call(method, path, auth, body).await.0.status()
}

async fn a_token_is_shown_once_and_listed_without_its_secret(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let created = create(&app, &ann, "profile posts:read").await;
    let secret = created["token"].as_str().unwrap();
    assert!(secret.starts_with("wdn_pat_"), "{secret}");
    assert!(secret.len() >= "wdn_pat_".len() + 43, "256 bits: {secret}");
    assert_eq!(created["name"], "deploy script");
    assert_eq!(created["scopes"], "profile posts:read");
    assert_eq!(created["last_used_at"], Value::Null);
    let created_at =
        chrono::DateTime::parse_from_rfc3339(created["created_at"].as_str().unwrap()).unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at - created_at, chrono::TimeDelta::days(30));
    let other = create(&app, &ann, "posts:read").await;
    assert_ne!(other["token"], created["token"]);

    // Using it records its use.
    app.get_with("/users/me", &bearer(&created))
        .await
        .assert_status_is_ok();
    let response = app.get_with("/users/me/tokens", &ann.bearer).await;
    response.assert_status_is_ok();
    let listed = json_of(response).await;
    assert!(!listed.to_string().contains(secret), "{listed}");
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], other["id"], "newest first");
    assert_eq!(listed[1]["id"], created["id"]);
    assert!(listed[1]["last_used_at"].is_string(), "{:?}", listed[1]);
    assert_eq!(
        listed[1].as_object().unwrap().len(),
        6,
        "no secret: {:?}",
        listed[1]
    );
}

async fn a_token_works_where_its_scopes_allow_and_no_further(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let reader = bearer(&create(&app, &ann, "posts:read").await);
    assert_eq!(
        status(&app, Method::GET, "/posts", &reader, None).await,
        StatusCode::OK
    );
    let post = json!({"title": "t", "content": "c"});
    let refused = app
        .call(Method::POST, "/posts", &reader, Some(post.clone()))
        .await;
    assert_eq!(
        header(&refused, "www-authenticate").as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="posts:write""#)
    );
    assert_detail(refused, StatusCode::FORBIDDEN, "Not enough permissions").await;
    assert_eq!(
        status(&app, Method::GET, "/users/me", &reader, None).await,
        StatusCode::FORBIDDEN
    );

    let writer = bearer(&create(&app, &ann, "posts:write profile").await);
    let response = app.call(Method::POST, "/posts", &writer, Some(post)).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(json_of(response).await["owner_id"], ann.id);
    let me = json_of(app.get_with("/users/me", &writer).await).await;
    assert_eq!(me["email"], "ann@example.com");
    // Events are the account's to read, with a token too.
    assert_eq!(
        status(&app, Method::GET, "/users/me/events", &writer, None).await,
        StatusCode::OK
    );
}

async fn a_token_cannot_touch_the_accounts_security(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let token = bearer(&create(&app, &ann, "profile posts:read posts:write").await);
    let password = json!({"current_password": PASSWORD, "new_password": "battery staple"});
    for (method, path, body) in [
        (
            Method::PATCH,
            "/users/me",
            Some(json!({"email": "evil@example.com", "current_password": PASSWORD})),
        ),
        (Method::PUT, "/users/me/password", Some(password)),
        (
            Method::DELETE,
            "/users/me",
            Some(json!({"current_password": PASSWORD})),
        ),
        (Method::GET, "/users/me/sessions", None),
        (Method::DELETE, "/users/me/sessions", None),
        (Method::POST, "/logout", None),
        (
            Method::POST,
            "/users/me/mfa/totp",
            Some(json!({"password": PASSWORD})),
        ),
        (
            Method::POST,
            "/users/me/mfa/recovery-codes",
            Some(json!({"password": PASSWORD, "code": "1"})),
        ),
        (Method::GET, "/users/me/tokens", None),
        (
            Method::POST,
            "/users/me/tokens",
            Some(
                json!({"name": "x", "scopes": "profile", "expires_in_days": 1, "current_password": PASSWORD}),
            ),
        ),
        (Method::DELETE, "/users/me/tokens/1", None),
    ] {
        let response = app.call(method.clone(), path, &token, body).await;
        assert_detail(
            response,
            StatusCode::FORBIDDEN,
            "this operation needs a password login",
        )
        .await;
    }
    // Nothing changed: the password login still works, with the old password.
    app.log_in("ann@example.com", PASSWORD, None).await;
    // A forged or unknown token is no valid token: 401, not 403.
    let forged = app
        .call(
            Method::GET,
            "/users/me/sessions",
            "Bearer wdn_pat_forged",
            None,
        )
        .await;
    assert_detail(
        forged,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
}

async fn a_revoked_token_fails_at_once_and_only_its_owner_revokes_it(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let created = create(&app, &ann, "profile").await;
    let path = format!("/users/me/tokens/{}", created["id"]);
    let by_bob = app.call(Method::DELETE, &path, &bob.bearer, None).await;
    assert_detail(
        by_bob,
        StatusCode::NOT_FOUND,
        "personal access token not found",
    )
    .await;
    assert_eq!(
        status(&app, Method::GET, "/users/me", &bearer(&created), None).await,
        StatusCode::OK
    );

    app.call(Method::DELETE, &path, &ann.bearer, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let after = app.get_with("/users/me", &bearer(&created)).await;
    assert_detail(
        after,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    let again = app.call(Method::DELETE, &path, &ann.bearer, None).await;
    again.assert_status(StatusCode::NOT_FOUND);
    let listed = json_of(app.get_with("/users/me/tokens", &ann.bearer).await).await;
    assert_eq!(listed, json!([]));
    let events = json_of(app.get_with("/users/me/events", &ann.bearer).await).await;
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types[..2],
        ["personal_token_revoked", "personal_token_created"]
    );
    assert!(
        !events
            .to_string()
            .contains(created["token"].as_str().unwrap())
    );
}

async fn a_token_dies_with_its_accounts_access(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;
    let token = bearer(&create(&app, &ann, "profile").await);
    let user = format!("/admin/users/{}", ann.id);
    app.call(
        Method::PATCH,
        &user,
        &admin.bearer,
        Some(json!({"is_active": false})),
    )
    .await
    .assert_status_is_ok();
    assert_eq!(
        status(&app, Method::GET, "/users/me", &token, None).await,
        StatusCode::UNAUTHORIZED
    );

    // An admin's token loses `admin` with the demotion.
    let admins_token = bearer(&create(&app, &admin, "admin profile").await);
    assert_eq!(
        status(&app, Method::GET, "/admin/users", &admins_token, None).await,
        StatusCode::OK
    );
    let other_admin = app.admin("second@example.com").await;
    app.call(
        Method::PATCH,
        &format!("/admin/users/{}", admin.id),
        &other_admin.bearer,
        Some(json!({"is_admin": false})),
    )
    .await
    .assert_status_is_ok();
    assert_eq!(
        status(&app, Method::GET, "/admin/users", &admins_token, None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, Method::GET, "/users/me", &admins_token, None).await,
        StatusCode::OK
    );

    // Gone with the account.
    let bob = app.user("bob@example.com").await;
    let bobs = bearer(&create(&app, &bob, "profile").await);
    app.call(
        Method::DELETE,
        "/users/me",
        &bob.bearer,
        Some(json!({"current_password": PASSWORD})),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        status(&app, Method::GET, "/users/me", &bobs, None).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn bad_token_requests_are_422(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    for body in [
        json!({"name": "x", "scopes": "", "expires_in_days": 30, "current_password": PASSWORD}),
        json!({"name": "x", "scopes": "admin", "expires_in_days": 30, "current_password": PASSWORD}),
        json!({"name": "x", "scopes": "tokens:introspect", "expires_in_days": 30, "current_password": PASSWORD}),
        json!({"name": "x", "scopes": "sudo", "expires_in_days": 30, "current_password": PASSWORD}),
        json!({"name": "x", "scopes": "profile", "expires_in_days": 0, "current_password": PASSWORD}),
        json!({"name": "x", "scopes": "profile", "expires_in_days": 366, "current_password": PASSWORD}),
        json!({"name": "", "scopes": "profile", "expires_in_days": 1, "current_password": PASSWORD}),
        json!({"name": "x".repeat(101), "scopes": "profile", "expires_in_days": 1, "current_password": PASSWORD}),
    ] {
        let response = app
            .call(
                Method::POST,
                "/users/me/tokens",
                &ann.bearer,
                Some(body.clone()),
            )
            .await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(json_of(response).await["detail"].is_string(), "{body}");
    }
    assert_eq!(
        json_of(app.get_with("/users/me/tokens", &ann.bearer).await).await,
        json!([])
    );
}

async fn introspection_and_revocation_know_personal_tokens(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;
    let created = create(&app, &ann, "posts:read").await;
    let secret = created["token"].as_str().unwrap();
    let introspect = |token: String| {
        let app = &app;
        let admin = &admin;
        async move {
            let response = app
                .client
                .post("/introspect")
                .header("authorization", &admin.bearer)
                .content_type("application/x-www-form-urlencoded")
                .body(format!("token={}", urlencode(&token)))
                .send()
                .await;
            response.assert_status_is_ok();
            json_of(response).await
        }
    };
    let active = introspect(secret.to_owned()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["scope"], "posts:read");
    assert_eq!(active["username"], "ann@example.com");
    assert_eq!(active["sub"], ann.id.to_string());

    let response = app
        .client
        .post("/revoke")
        .content_type("application/x-www-form-urlencoded")
        .body(format!("token={}", urlencode(secret)))
        .send()
        .await;
    response.assert_status_is_ok();
    assert_eq!(
        introspect(secret.to_owned()).await,
        json!({"active": false})
    );
    assert_eq!(
        status(&app, Method::GET, "/posts", &bearer(&created), None).await,
        StatusCode::UNAUTHORIZED
    );
}
