//! The caller's sessions, "your devices" (contract section 9), and what access tokens say about
//! their login: `client_id` and `amr` (section 3).

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    a_login_records_its_client_agent_and_address_and_the_list_shows_them,
    a_refresh_keeps_the_logins_client_and_is_a_use_of_its_session,
    a_client_id_must_be_1_to_64_visible_ascii_characters,
    ending_a_session_ends_its_tokens_at_once_and_only_the_owner_may,
    ending_every_other_session_keeps_only_the_callers,
    ending_your_own_session_logs_you_out,
    an_admin_ends_every_session_of_a_user,
);

/// A password login of `email` with extra form fields and headers: its token answer.
async fn log_in(app: &TestApp, email: &str, extra_form: &str, headers: &[(&str, &str)]) -> Value {
    let mut request = app
        .client
        .post("/login")
        .content_type("application/x-www-form-urlencoded")
        .body(format!(
            "username={}&password={}{extra_form}",
            urlencode(email),
            urlencode(PASSWORD)
        ));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await;
    response.assert_status_is_ok();
    json_of(response).await
}

fn bearer(grant: &Value) -> String {
    format!("Bearer {}", grant["access_token"].as_str().unwrap())
}

fn sid(grant: &Value) -> String {
    claims_of(grant["access_token"].as_str().unwrap())["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sessions(app: &TestApp, grant: &Value) -> Vec<Value> {
    let response = app.get_with("/users/me/sessions", &bearer(grant)).await;
    response.assert_status_is_ok();
    json_of(response).await.as_array().unwrap().clone()
}

async fn status_with(app: &TestApp, grant: &Value) -> StatusCode {
    app.get_with("/users/me", &bearer(grant)).await.0.status()
}

async fn a_login_records_its_client_agent_and_address_and_the_list_shows_them(app: TestApp) {
    // Behind one trusted proxy, the client address is the forwarded one.
    let proxied = TestApp::on(Arc::clone(&app.db), &["--trusted-proxy-hops", "1"]);
    app.user("ann@example.com").await;
    let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
    let phone = log_in(
        &proxied,
        "ann@example.com",
        "&client_id=mobile-app",
        &[("user-agent", agent), ("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    let laptop = log_in(&app, "ann@example.com", "", &[]).await;

    let phone_claims = claims_of(phone["access_token"].as_str().unwrap());
    assert_eq!(phone_claims["client_id"], "mobile-app");
    assert_eq!(phone_claims["amr"], json!(["pwd"]));
    let laptop_claims = claims_of(laptop["access_token"].as_str().unwrap());
    assert_eq!(laptop_claims["client_id"], "warden");
    assert_eq!(laptop_claims["amr"], json!(["pwd"]));

    let listed = sessions(&app, &laptop).await;
    // Newest first: the laptop, then the phone, then the registration's own login.
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0]["id"], sid(&laptop));
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["client_id"], "warden");
    assert_eq!(listed[0]["user_agent"], Value::Null);
    assert_eq!(listed[0]["ip_address"], Value::Null);
    assert_eq!(listed[1]["id"], sid(&phone));
    assert_eq!(listed[1]["current"], false);
    assert_eq!(listed[1]["client_id"], "mobile-app");
    assert_eq!(listed[1]["user_agent"], agent);
    assert_eq!(listed[1]["ip_address"], "203.0.113.9");
    for session in &listed {
        for time in ["created_at", "last_used_at", "expires_at"] {
            let at = session[time].as_str().unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(at).is_ok(),
                "{time}: {at}"
            );
        }
        assert_eq!(
            session.as_object().unwrap().len(),
            8,
            "exactly the contract's fields: {session}"
        );
    }
    // From the phone, the phone is current.
    let from_phone = sessions(&app, &phone).await;
    assert_eq!(from_phone[1]["current"], true);
    assert_eq!(from_phone[0]["current"], false);

    // A user agent is kept without control characters and cut to 256 characters.
    let long = format!("{}\t{}", "a".repeat(200), "b".repeat(100));
    let third = log_in(&app, "ann@example.com", "", &[("user-agent", &long)]).await;
    let kept = sessions(&app, &third).await[0]["user_agent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kept, format!("{}{}", "a".repeat(200), "b".repeat(56)));
}

async fn a_refresh_keeps_the_logins_client_and_is_a_use_of_its_session(app: TestApp) {
    app.user("ann@example.com").await;
    let login = log_in(&app, "ann@example.com", "&client_id=cli", &[]).await;
    let before = sessions(&app, &login).await[0].clone();
    // A refresh naming another client does not change the login's.
    let response = app
        .login_form(&format!(
            "grant_type=refresh_token&client_id=other&refresh_token={}",
            urlencode(login["refresh_token"].as_str().unwrap())
        ))
        .await;
    response.assert_status_is_ok();
    let refreshed = json_of(response).await;
    let claims = claims_of(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], "cli");
    assert_eq!(claims["amr"], json!(["pwd"]));

    let after = sessions(&app, &refreshed).await[0].clone();
    assert_eq!(after["id"], before["id"]);
    let moment = |session: &Value, name: &str| {
        chrono::DateTime::parse_from_rfc3339(session[name].as_str().unwrap()).unwrap()
    };
    assert!(
        moment(&after, "last_used_at") > moment(&before, "last_used_at"),
        "{before} then {after}"
    );
    assert_eq!(moment(&after, "created_at"), moment(&before, "created_at"));
}

async fn a_client_id_must_be_1_to_64_visible_ascii_characters(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let long = "x".repeat(65);
    for bad in ["my app", "caf%C3%A9", "tab%09", long.as_str()] {
        let password = app
            .login_form(&format!(
                "username=ann%40example.com&password={}&client_id={bad}",
                urlencode(PASSWORD)
            ))
            .await;
        assert_oauth_error(password, "invalid_request").await;
        let refresh = app
            .login_form(&format!(
                "grant_type=refresh_token&refresh_token={}&client_id={bad}",
                urlencode(&ann.refresh_token)
            ))
            .await;
        assert_oauth_error(refresh, "invalid_request").await;
    }
    // The refresh token was not spent by the refused requests.
    app.refresh(&ann.refresh_token).await.assert_status_is_ok();
    // An empty client_id is an absent one.
    let empty = log_in(&app, "ann@example.com", "&client_id=", &[]).await;
    assert_eq!(
        claims_of(empty["access_token"].as_str().unwrap())["client_id"],
        "warden"
    );
    let widest = "~".repeat(64);
    let max = log_in(
        &app,
        "ann@example.com",
        &format!("&client_id={widest}"),
        &[],
    )
    .await;
    assert_eq!(
        claims_of(max["access_token"].as_str().unwrap())["client_id"],
        widest
    );
}

async fn ending_a_session_ends_its_tokens_at_once_and_only_the_owner_may(app: TestApp) {
    app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let phone = log_in(&app, "ann@example.com", "", &[]).await;
    let laptop = log_in(&app, "ann@example.com", "", &[]).await;
    let phone_session = format!("/users/me/sessions/{}", sid(&phone));

    // Bob cannot end Ann's session: to him it does not exist.
    let by_bob = app
        .call(Method::DELETE, &phone_session, &bob.bearer, None)
        .await;
    assert_detail(by_bob, StatusCode::NOT_FOUND, "session not found").await;
    assert_eq!(status_with(&app, &phone).await, StatusCode::OK);

    let ended = app
        .call(Method::DELETE, &phone_session, &bearer(&laptop), None)
        .await;
    ended.assert_status(StatusCode::NO_CONTENT);
    let response = app.get_with("/users/me", &bearer(&phone)).await;
    assert_detail(
        response,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    assert_oauth_error(
        app.refresh(phone["refresh_token"].as_str().unwrap()).await,
        "invalid_grant",
    )
    .await;
    assert_eq!(status_with(&app, &laptop).await, StatusCode::OK);
    assert!(
        sessions(&app, &laptop)
            .await
            .iter()
            .all(|session| session["id"] != sid(&phone))
    );

    // Ended, unknown and malformed ids are all simply not found.
    for path in [
        phone_session.clone(),
        format!("/users/me/sessions/{}", uuid::Uuid::new_v4()),
        "/users/me/sessions/not-a-session".to_owned(),
    ] {
        let again = app
            .call(Method::DELETE, &path, &bearer(&laptop), None)
            .await;
        assert_detail(again, StatusCode::NOT_FOUND, "session not found").await;
    }
}

async fn ending_every_other_session_keeps_only_the_callers(app: TestApp) {
    app.user("ann@example.com").await;
    let grants = [
        log_in(&app, "ann@example.com", "", &[]).await,
        log_in(&app, "ann@example.com", "", &[]).await,
        log_in(&app, "ann@example.com", "", &[]).await,
    ];
    let bob = app.user("bob@example.com").await;

    let response = app
        .call(
            Method::DELETE,
            "/users/me/sessions",
            &bearer(&grants[1]),
            None,
        )
        .await;
    response.assert_status(StatusCode::NO_CONTENT);

    assert_eq!(
        status_with(&app, &grants[0]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, &grants[2]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with(&app, &grants[1]).await, StatusCode::OK);
    let left = sessions(&app, &grants[1]).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], sid(&grants[1]));
    assert_eq!(left[0]["current"], true);
    // Other accounts are untouched.
    app.get_with("/users/me", &bob.bearer)
        .await
        .assert_status_is_ok();
}

async fn ending_your_own_session_logs_you_out(app: TestApp) {
    app.user("ann@example.com").await;
    let login = log_in(&app, "ann@example.com", "", &[]).await;
    let response = app
        .call(
            Method::DELETE,
            &format!("/users/me/sessions/{}", sid(&login)),
            &bearer(&login),
            None,
        )
        .await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(status_with(&app, &login).await, StatusCode::UNAUTHORIZED);
}

async fn an_admin_ends_every_session_of_a_user(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;
    let second = log_in(&app, "ann@example.com", "", &[]).await;

    let response = app
        .call(
            Method::DELETE,
            &format!("/admin/users/{}/sessions", ann.id),
            &admin.bearer,
            None,
        )
        .await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_with("/users/me", &ann.bearer).await.0.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with(&app, &second).await, StatusCode::UNAUTHORIZED);
    // The account stays active: Ann logs in again, and the admin's own session is untouched.
    let again = log_in(&app, "ann@example.com", "", &[]).await;
    assert_eq!(status_with(&app, &again).await, StatusCode::OK);
    app.get_with("/users/me", &admin.bearer)
        .await
        .assert_status_is_ok();

    let missing = app
        .call(
            Method::DELETE,
            "/admin/users/987654/sessions",
            &admin.bearer,
            None,
        )
        .await;
    assert_detail(
        missing,
        StatusCode::NOT_FOUND,
        "User with id: 987654 does not exist",
    )
    .await;
}
