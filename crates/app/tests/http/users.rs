//! Registration, login and the account operations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use poem::Body;
use poem::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    a_new_user_registers_logs_in_and_reads_their_account,
    registering_a_taken_email_is_a_conflict_whatever_its_case,
    registering_with_bad_input_is_a_422_naming_the_field,
    registering_with_a_wrong_content_type_is_a_415,
    collection_paths_accept_a_trailing_slash,
    unknown_email_and_wrong_password_get_identical_answers,
    login_refuses_malformed_forms_with_invalid_request,
    login_answers_other_grant_types_and_scopes_per_rfc_6749,
    login_grants_the_requested_scopes_only,
    login_ignores_basic_auth_and_client_credentials,
    protected_calls_without_a_bearer_token_are_401_with_a_challenge,
    bad_tokens_are_401_invalid_token,
    a_token_without_the_needed_scope_is_403,
    a_token_of_an_unknown_session_is_refused,
    the_bearer_scheme_is_case_insensitive,
    reading_another_users_profile,
    unknown_paths_are_json_404s,
    every_response_carries_a_request_id,
    the_openapi_document_and_swagger_ui_are_served,
    health_probes_answer,
    oversized_bodies_are_refused_without_a_server_error,
);

async fn a_new_user_registers_logs_in_and_reads_their_account(app: TestApp) {
    let response = app.register("ann@example.com", PASSWORD).await;
    response.assert_status(StatusCode::CREATED);
    let user = json_of(response).await;
    assert_eq!(user["email"], "ann@example.com");
    assert!(user["id"].is_i64());
    assert!(
        user["created_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok()
    );
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let response = app
        .login_form("username=ann%40example.com&password=correct+horse")
        .await;
    response.assert_status_is_ok();
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(header(&response, "pragma").as_deref(), Some("no-cache"));
    let grant = json_of(response).await;
    assert_eq!(grant["token_type"], "bearer");
    assert_eq!(grant["expires_in"], 900);
    assert_eq!(grant["scope"], "profile posts:read posts:write");
    let token = grant["access_token"].as_str().unwrap();

    let response = app.get_with("/users/me", &format!("Bearer {token}")).await;
    response.assert_status_is_ok();
    let me = json_of(response).await;
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["created_at"], user["created_at"]);
    assert_eq!(me["is_active"], true);
    assert_eq!(me["is_admin"], false);
}

async fn registering_a_taken_email_is_a_conflict_whatever_its_case(app: TestApp) {
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let response = app.register("  ANN@Example.com ", PASSWORD).await;
    assert_detail(
        response,
        StatusCode::CONFLICT,
        "a user with this email already exists",
    )
    .await;
}

async fn registering_with_bad_input_is_a_422_naming_the_field(app: TestApp) {
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "ann@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "ann@example.com", "password": "x".repeat(1025)}),
            "password",
        ),
        (json!({"email": "ann@example.com"}), "password"),
        (json!({"password": PASSWORD}), "email"),
        (json!({"email": 7, "password": PASSWORD}), "email"),
    ];
    for (body, field) in cases {
        let response = app.client.post("/users").body_json(&body).send().await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        let detail = json_of(response).await["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains(field), "{body} gave {detail:?}");
    }
    let response = app
        .client
        .post("/users")
        .content_type("application/json")
        .body("{not json")
        .send()
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json_of(response).await["detail"].is_string());

    // Nothing was stored: the address is still free.
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn registering_with_a_wrong_content_type_is_a_415(app: TestApp) {
    let response = app
        .client
        .post("/users")
        .content_type("text/plain")
        .body(r#"{"email": "ann@example.com", "password": "correct horse"}"#)
        .send()
        .await;
    response.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json_of(response).await["detail"].is_string());
}

async fn collection_paths_accept_a_trailing_slash(app: TestApp) {
    let response = app
        .client
        .post("/users/")
        .body_json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await;
    response.assert_status(StatusCode::CREATED);
}

async fn unknown_email_and_wrong_password_get_identical_answers(app: TestApp) {
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    let mut answers = Vec::new();
    for form in [
        "username=ann@example.com&password=wrong+password",
        "username=nobody@example.com&password=correct+horse",
        "username=not-an-email&password=correct+horse",
    ] {
        answers.push(answer(app.login_form(form).await).await);
    }
    assert_eq!(answers[0].0, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&answers[0].2).unwrap(),
        json!({"error": "invalid_grant", "error_description": "incorrect username or password"})
    );
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

async fn login_refuses_malformed_forms_with_invalid_request(app: TestApp) {
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    for form in [
        "",
        "password=correct+horse",
        "username=ann@example.com",
        "username=&password=correct+horse",
        "username=ann@example.com&password=",
        "username=ann@example.com&password=correct+horse&password=correct+horse",
        "username=ann@example.com&password=%FF%FE",
    ] {
        assert_oauth_error(app.login_form(form).await, "invalid_request").await;
    }
    let huge = format!("username=ann@example.com&password={}", "x".repeat(1025));
    let body = assert_oauth_error(app.login_form(&huge).await, "invalid_request").await;
    assert!(body["error_description"].as_str().unwrap().contains("1024"));

    let response = app
        .client
        .post("/login")
        .body_json(&json!({"username": "ann@example.com", "password": PASSWORD}))
        .send()
        .await;
    assert_oauth_error(response, "invalid_request").await;
    let response = app.client.post("/login").send().await;
    assert_oauth_error(response, "invalid_request").await;
}

async fn login_answers_other_grant_types_and_scopes_per_rfc_6749(app: TestApp) {
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let response = app
        .login_form("grant_type=client_credentials&username=ann@example.com&password=correct+horse")
        .await;
    assert_oauth_error(response, "unsupported_grant_type").await;
    let response = app
        .login_form("username=ann@example.com&password=correct+horse&scope=profile+sudo")
        .await;
    assert_oauth_error(response, "invalid_scope").await;
    let response = app
        .login_form("grant_type=password&username=ann@example.com&password=correct+horse")
        .await;
    response.assert_status_is_ok();
}

async fn login_grants_the_requested_scopes_only(app: TestApp) {
    let token = app
        .user_with_scope("ann@example.com", Some("posts:read admin"))
        .await
        .access_token;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    // `admin` is dropped: Ann is no admin.
    assert_eq!(claims["scope"], "posts:read");
    assert_eq!(claims["sub"], claims["user_id"].to_string());
    for claim in ["iss", "aud", "sid", "iat", "nbf", "exp", "jti"] {
        assert!(!claims[claim].is_null(), "{claim} missing from {claims}");
    }
}

async fn login_ignores_basic_auth_and_client_credentials(app: TestApp) {
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    // What Swagger UI sends by default.
    let response = app
        .client
        .post("/login")
        .header("authorization", "Basic Og==")
        .content_type("application/x-www-form-urlencoded")
        .body("grant_type=password&username=ann%40example.com&password=correct%20horse&client_id=&client_secret=x&scope=")
        .send()
        .await;
    response.assert_status_is_ok();
    assert_eq!(
        json_of(response).await["scope"],
        "profile posts:read posts:write"
    );
}

async fn protected_calls_without_a_bearer_token_are_401_with_a_challenge(app: TestApp) {
    let response = app.client.get("/users/me").send().await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some("Bearer")
    );
    assert_detail(response, StatusCode::UNAUTHORIZED, "Not authenticated").await;

    for authorization in ["Basic YW5uOnB3", "Token abc", "Bearer", ""] {
        let response = app.get_with("/users/me", authorization).await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some("Bearer")
        );
        assert_detail(response, StatusCode::UNAUTHORIZED, "Not authenticated").await;
    }
}

async fn bad_tokens_are_401_invalid_token(app: TestApp) {
    let token = app
        .user_with_scope("ann@example.com", None)
        .await
        .access_token;
    let claims = claims_of(&token);
    let mut at_jwt = Header::new(Algorithm::HS256);
    at_jwt.typ = Some("at+jwt".into());

    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 60);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let payload = token.split('.').nth(1).unwrap();
    let mut plain_jwt = Header::new(Algorithm::HS256);
    plain_jwt.typ = Some("JWT".into());
    let mut hs512 = Header::new(Algorithm::HS512);
    hs512.typ = Some("at+jwt".into());

    let bad_tokens = [
        ("garbage", "not-a-jwt".to_owned()),
        ("tampered", tampered),
        ("expired", forge(&at_jwt, &expired, SECRET)),
        (
            "other secret",
            forge(&at_jwt, &claims, "another-secret-another-secret-another"),
        ),
        ("alg none", format!("{none_header}.{payload}.")),
        ("HS512", forge(&hs512, &claims, SECRET)),
        ("typ JWT", forge(&plain_jwt, &claims, SECRET)),
    ];
    for (kind, bad) in bad_tokens {
        let response = app.get_with("/users/me", &format!("Bearer {bad}")).await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some(r#"Bearer error="invalid_token""#),
            "{kind}"
        );
        assert_detail(
            response,
            StatusCode::UNAUTHORIZED,
            "Could not validate credentials",
        )
        .await;
    }
}

async fn a_token_without_the_needed_scope_is_403(app: TestApp) {
    let token = app
        .user_with_scope("ann@example.com", Some("posts:read"))
        .await
        .access_token;
    let response = app.get_with("/users/me", &format!("Bearer {token}")).await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="profile""#)
    );
    assert_detail(response, StatusCode::FORBIDDEN, "Not enough permissions").await;

    let token = app
        .user_with_scope("bob@example.com", Some("profile"))
        .await
        .access_token;
    let response = app.get_with("/users/1", &format!("Bearer {token}")).await;
    assert_eq!(
        header(&response, "www-authenticate").as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="posts:read""#)
    );
    assert_detail(response, StatusCode::FORBIDDEN, "Not enough permissions").await;
}

async fn a_token_of_an_unknown_session_is_refused(app: TestApp) {
    // Correctly signed, but for a session that was never opened.
    let token = app
        .user_with_scope("ann@example.com", None)
        .await
        .access_token;
    let mut claims = claims_of(&token);
    claims["sid"] = json!(uuid::Uuid::new_v4().to_string());
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let forged = forge(&header, &claims, SECRET);

    let response = app.get_with("/users/me", &format!("Bearer {forged}")).await;
    assert_detail(
        response,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
}

async fn the_bearer_scheme_is_case_insensitive(app: TestApp) {
    let token = app
        .user_with_scope("ann@example.com", None)
        .await
        .access_token;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = app
            .get_with("/users/me", &format!("{scheme} {token}"))
            .await;
        response.assert_status_is_ok();
    }
}

async fn reading_another_users_profile(app: TestApp) {
    let response = app.register("bob@example.com", PASSWORD).await;
    let bob = json_of(response).await;
    let token = app
        .user_with_scope("ann@example.com", None)
        .await
        .access_token;
    let bearer = format!("Bearer {token}");

    let response = app
        .get_with(&format!("/users/{}", bob["id"]), &bearer)
        .await;
    response.assert_status_is_ok();
    assert_eq!(json_of(response).await, bob);

    let response = app.get_with("/users/999999", &bearer).await;
    assert_detail(
        response,
        StatusCode::NOT_FOUND,
        "User with id: 999999 does not exist",
    )
    .await;

    let response = app.get_with("/users/abc", &bearer).await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_of(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("id")
    );
}

async fn unknown_paths_are_json_404s(app: TestApp) {
    let response = app.client.get("/nowhere").send().await;
    assert_detail(response, StatusCode::NOT_FOUND, "Not Found").await;
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let response = app.client.get("/health/live").send().await;
    let generated = header(&response, "x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");

    let response = app
        .client
        .get("/nowhere")
        .header("x-request-id", "trace-123")
        .send()
        .await;
    assert_eq!(
        header(&response, "x-request-id").as_deref(),
        Some("trace-123")
    );
}

async fn the_openapi_document_and_swagger_ui_are_served(app: TestApp) {
    let response = app.client.get("/openapi.json").send().await;
    response.assert_status_is_ok();
    let doc = json_of(response).await;
    let scheme = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(scheme["flows"]["password"]["tokenUrl"], "/login");
    let scopes = scheme["flows"]["password"]["scopes"].as_object().unwrap();
    let mut names: Vec<&str> = scopes.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "admin",
            "posts:read",
            "posts:write",
            "profile",
            "tokens:introspect"
        ]
    );
    // A second scheme for personal access tokens (contract section 13), a bearer one Swagger
    // UI can paste a token into; the account's security operations do not list it.
    let tokens = &doc["components"]["securitySchemes"]["PersonalAccessToken"];
    assert_eq!(tokens["type"], "http");
    assert_eq!(tokens["scheme"], "bearer");
    assert_eq!(
        doc["paths"]["/users/me"]["get"]["security"],
        json!([{"PersonalAccessToken": ["profile"]}, {"OAuth2PasswordBearer": ["profile"]}])
    );
    assert_eq!(
        doc["paths"]["/users/{id}"]["get"]["security"],
        json!([{"PersonalAccessToken": ["posts:read"]}, {"OAuth2PasswordBearer": ["posts:read"]}])
    );
    assert_eq!(
        doc["paths"]["/users/me/password"]["put"]["security"],
        json!([{"OAuth2PasswordBearer": ["profile"]}])
    );
    assert!(doc["paths"]["/users"]["post"]["security"].is_null());
    assert!(doc["paths"]["/login"]["post"]["security"].is_null());

    let response = app.client.get("/docs").send().await;
    response.assert_status_is_ok();
    let html = response.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger"), "not Swagger UI");
}

async fn health_probes_answer(app: TestApp) {
    app.client
        .get("/health/live")
        .send()
        .await
        .assert_status_is_ok();
    app.client
        .get("/health/ready")
        .send()
        .await
        .assert_status_is_ok();
}

async fn oversized_bodies_are_refused_without_a_server_error(app: TestApp) {
    let big = format!(
        r#"{{"email": "ann@example.com", "password": "{}"}}"#,
        "x".repeat(100 * 1024)
    );

    let response = app
        .client
        .post("/users")
        .content_type("application/json")
        // poem's test client, unlike a real one, does not send it by itself.
        .header("content-length", big.len())
        .body(big.clone())
        .send()
        .await;
    assert_detail(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than 64 KiB",
    )
    .await;

    // Without a Content-Length the body is cut at 64 KiB as it is read.
    let chunked = Body::from_async_read(std::io::Cursor::new(big.into_bytes()));
    let response = app
        .client
        .post("/users")
        .content_type("application/json")
        .body(chunked)
        .send()
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);

    // Nothing was stored.
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
}
