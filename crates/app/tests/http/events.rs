//! The security event log (contract section 11): what is recorded, from where, how it is read
//! and paged, who may read it, the retention's cut, and that it holds no secret.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use warden_domain::{
    accounts::UserId,
    events::{EventContext, NewSecurityEvent, SecurityEventKind, SecurityEventRepository},
};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    logins_refusals_and_logouts_are_recorded_from_where_they_came,
    every_change_to_an_account_is_recorded,
    events_hold_no_password_or_token,
    events_are_paged_newest_first_and_admins_filter_them,
    events_past_the_retention_are_never_listed,
);

/// The `type`s of `events`, in order.
fn types(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn my_events(app: &TestApp, bearer: &str, query: &str) -> Value {
    let response = app
        .get_with(&format!("/users/me/events{query}"), bearer)
        .await;
    response.assert_status_is_ok();
    json_of(response).await
}

async fn admin_events(app: &TestApp, admin: &TestUser, query: &str) -> Value {
    let response = app
        .get_with(&format!("/admin/events{query}"), &admin.bearer)
        .await;
    response.assert_status_is_ok();
    json_of(response).await
}

fn sid(access_token: &str) -> Value {
    claims_of(access_token)["sid"].clone()
}

async fn logins_refusals_and_logouts_are_recorded_from_where_they_came(app: TestApp) {
    // Behind one trusted proxy, the client address is the forwarded one.
    let proxied = TestApp::on(Arc::clone(&app.db), &["--trusted-proxy-hops", "1"]);
    let ann = app.user("ann@example.com").await;
    let agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
    let from = [("user-agent", agent), ("x-forwarded-for", "203.0.113.9")];
    let mut wrong = proxied
        .client
        .post("/login")
        .content_type("application/x-www-form-urlencoded")
        .body("username=ann%40example.com&password=not+her+password");
    for (name, value) in from {
        wrong = wrong.header(name, value);
    }
    assert_oauth_error(wrong.send().await, "invalid_grant").await;
    // An unknown account has no log to write to.
    assert_oauth_error(
        app.login_form("username=nobody%40example.com&password=whatever")
            .await,
        "invalid_grant",
    )
    .await;
    let mut login = proxied
        .client
        .post("/login")
        .content_type("application/x-www-form-urlencoded")
        .body(format!(
            "username=ann%40example.com&password={}",
            urlencode(PASSWORD)
        ));
    for (name, value) in from {
        login = login.header(name, value);
    }
    let response = login.send().await;
    response.assert_status_is_ok();
    let phone = json_of(response).await;
    let phone_bearer = format!("Bearer {}", phone["access_token"].as_str().unwrap());
    proxied
        .client
        .post("/logout")
        .header("authorization", &phone_bearer)
        .header("user-agent", agent)
        .header("x-forwarded-for", "203.0.113.10")
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);

    // A refused login is recorded without making its answer wait: give the write a moment.
    let mut events = my_events(&app, &ann.bearer, "").await;
    for _ in 0..100 {
        if events.as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        events = my_events(&app, &ann.bearer, "").await;
    }
    assert_eq!(types(&events), ["logout", "login", "login_failed", "login"]);
    let [logout, login, failed, first] = events.as_array().unwrap().as_slice() else {
        unreachable!()
    };
    assert_eq!(logout["ip_address"], "203.0.113.10");
    assert_eq!(logout["user_agent"], agent);
    assert_eq!(
        logout["session_id"],
        sid(phone["access_token"].as_str().unwrap())
    );
    assert_eq!(login["ip_address"], "203.0.113.9");
    assert_eq!(login["session_id"], logout["session_id"]);
    assert_eq!(failed["ip_address"], "203.0.113.9");
    assert_eq!(failed["user_agent"], agent);
    assert_eq!(failed["session_id"], Value::Null);
    // The test client has no address and sends no user agent.
    assert_eq!(first["ip_address"], Value::Null);
    assert_eq!(first["session_id"], sid(&ann.access_token));
    for event in events.as_array().unwrap() {
        assert!(event["id"].is_i64(), "{event}");
        let at = event["at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
        assert_eq!(
            event.as_object().unwrap().len(),
            6,
            "exactly the contract's fields: {event}"
        );
    }
}

async fn every_change_to_an_account_is_recorded(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;
    let second = app.log_in_again(&ann, None).await;
    let third = app.log_in_again(&ann, None).await;

    // A session ended from the list, then a refresh token replayed.
    let end = format!(
        "/users/me/sessions/{}",
        sid(&second.access_token).as_str().unwrap()
    );
    app.call(Method::DELETE, &end, &ann.bearer, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.refresh(&third.refresh_token)
        .await
        .assert_status_is_ok();
    assert_oauth_error(app.refresh(&third.refresh_token).await, "invalid_grant").await;
    // Email, then password (which ends no other session now: none is left).
    let response = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "ann@example.org", "current_password": PASSWORD})),
        )
        .await;
    response.assert_status_is_ok();
    let body = json!({"current_password": PASSWORD, "new_password": "battery staple"});
    app.call(Method::PUT, "/users/me/password", &ann.bearer, Some(body))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // An admin's changes: only what changes is recorded.
    let user = format!("/admin/users/{}", ann.id);
    for flags in [
        json!({"is_admin": true}),
        json!({"is_admin": true}),
        json!({"is_admin": false, "is_active": false}),
        json!({"is_active": true}),
    ] {
        app.call(Method::PATCH, &user, &admin.bearer, Some(flags))
            .await
            .assert_status_is_ok();
    }
    let ann = app.log_in("ann@example.org", "battery staple", None).await;
    app.call(
        Method::DELETE,
        &format!("/admin/users/{}/sessions", ann.id),
        &admin.bearer,
        None,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    let events = admin_events(&app, &admin, &format!("?user_id={}", ann.id)).await;
    assert_eq!(
        types(&events),
        [
            "session_revoked",
            "login",
            "account_enabled",
            "admin_revoked",
            "account_disabled",
            "admin_granted",
            "password_changed",
            "email_changed",
            "refresh_reuse_detected",
            "session_revoked",
            "login",
            "login",
            "login",
        ]
    );
    let event = |index: usize| events.as_array().unwrap()[index].clone();
    // An admin's actions carry none of the admin's request.
    for index in [0, 2, 3, 4, 5] {
        assert_eq!(event(index)["session_id"], Value::Null, "{}", event(index));
        assert_eq!(event(index)["user_agent"], Value::Null, "{}", event(index));
        assert_eq!(event(index)["user_id"], ann.id);
    }
    assert_eq!(event(8)["session_id"], sid(&third.access_token));
    assert_eq!(event(9)["session_id"], sid(&second.access_token));
}

async fn events_hold_no_password_or_token(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;
    let second = app.log_in_again(&ann, None).await;
    assert_oauth_error(
        app.login_form("username=ann%40example.com&password=hunter2-not-hers")
            .await,
        "invalid_grant",
    )
    .await;
    app.refresh(&second.refresh_token)
        .await
        .assert_status_is_ok();
    assert_oauth_error(app.refresh(&second.refresh_token).await, "invalid_grant").await;
    let body = json!({"current_password": PASSWORD, "new_password": "battery staple"});
    app.call(Method::PUT, "/users/me/password", &ann.bearer, Some(body))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let everything = admin_events(&app, &admin, "?limit=200").await.to_string();
    assert!(everything.contains("password_changed"), "{everything}");
    for secret in [
        PASSWORD,
        "battery staple",
        "hunter2-not-hers",
        &ann.access_token,
        &ann.refresh_token,
        &second.access_token,
        &second.refresh_token,
        &admin.access_token,
    ] {
        assert!(
            !everything.contains(secret),
            "an event holds a secret: {secret}"
        );
    }
}

async fn events_are_paged_newest_first_and_admins_filter_them(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    for _ in 0..4 {
        app.log_in_again(&ann, None).await;
    }
    // Five logins: two pages of two and one of one, each before the last id seen.
    let first = my_events(&app, &ann.bearer, "?limit=2").await;
    assert_eq!(types(&first), ["login", "login"]);
    let last_id = |page: &Value| page.as_array().unwrap().last().unwrap()["id"].clone();
    let second = my_events(
        &app,
        &ann.bearer,
        &format!("?limit=2&before={}", last_id(&first)),
    )
    .await;
    assert_eq!(types(&second), ["login", "login"]);
    let third = my_events(
        &app,
        &ann.bearer,
        &format!("?limit=2&before={}", last_id(&second)),
    )
    .await;
    assert_eq!(third.as_array().unwrap().len(), 1);
    let ids: Vec<i64> = [&first, &second, &third]
        .iter()
        .flat_map(|page| {
            page.as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap())
        })
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "{ids:?}");
    // Bob sees only his own.
    assert_eq!(types(&my_events(&app, &bob.bearer, "").await), ["login"]);

    for bad in ["?limit=0", "?limit=201", "?limit=x", "?before=x"] {
        let response = app
            .get_with(&format!("/users/me/events{bad}"), &ann.bearer)
            .await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Admins filter by account and type; everybody else is refused.
    let logins = admin_events(&app, &admin, "?type=login").await;
    assert_eq!(logins.as_array().unwrap().len(), 7);
    let bobs = admin_events(&app, &admin, &format!("?user_id={}&type=login", bob.id)).await;
    assert_eq!(bobs.as_array().unwrap().len(), 1);
    assert_eq!(bobs[0]["user_id"], bob.id);
    assert!(
        admin_events(&app, &admin, "?type=mfa_enabled")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let unknown = app.get_with("/admin/events?type=sudo", &admin.bearer).await;
    assert_detail_contains(unknown, "type").await;
    let refused = app.get_with("/admin/events", &ann.bearer).await;
    assert_detail(refused, StatusCode::FORBIDDEN, "Not enough permissions").await;
    let anonymous = app.client.get("/users/me/events").send().await;
    assert_detail(anonymous, StatusCode::UNAUTHORIZED, "Not authenticated").await;
}

async fn assert_detail_contains(response: poem::test::TestResponse, field: &str) {
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_of(response).await;
    assert!(body["detail"].to_string().contains(field), "{body}");
}

async fn events_past_the_retention_are_never_listed(app: TestApp) {
    let short = TestApp::on(Arc::clone(&app.db), &["--event-retention-days", "1"]);
    let ann = short.user("ann@example.com").await;
    let old = NewSecurityEvent {
        user_id: UserId::new(ann.id),
        kind: SecurityEventKind::PasswordChanged,
        at: Utc::now() - TimeDelta::hours(25),
        context: EventContext::default(),
    };
    app.db.store().record_events(&[old]).await.unwrap();
    // Not yet pruned, but past a one-day retention: not listed.
    assert_eq!(types(&my_events(&short, &ann.bearer, "").await), ["login"]);
    // The default retention (90 days) still shows it (listed by id: it was stored last).
    assert_eq!(
        types(&my_events(&app, &ann.bearer, "").await),
        ["password_changed", "login"]
    );
}
