//! The account's bounds (contract section 5, "Account safety"): an admin operation is never
//! aimed at the admin's own account, the service always keeps an active admin, an account holds
//! at most `MAX_SESSIONS_PER_ACCOUNT` sessions and `MAX_PERSONAL_TOKENS` personal tokens, and
//! the lists of sessions and tokens page.

use std::collections::HashSet;

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    an_admin_cannot_reset_their_own_second_factor_or_end_their_own_sessions,
    the_last_active_admin_cannot_delete_their_account,
    two_admins_demoting_each_other_at_once_leave_exactly_one,
    the_101st_login_ends_the_least_recently_used_session,
    the_51st_personal_token_is_refused,
    sessions_and_tokens_page_newest_first_in_disjoint_pages,
    a_page_size_out_of_range_is_422,
);

const LAST_ADMIN: &str = "at least one active admin must remain";

async fn an_admin_cannot_reset_their_own_second_factor_or_end_their_own_sessions(app: TestApp) {
    let root = app.admin("root@example.com").await;
    let ann = app.user("ann@example.com").await;

    assert_detail(
        app.call(
            Method::POST,
            &format!("/admin/users/{}/mfa/reset", root.id),
            &root.bearer,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "admins cannot reset their own second factor; disable it with your password and a code",
    )
    .await;
    assert_detail(
        app.call(
            Method::DELETE,
            &format!("/admin/users/{}/sessions", root.id),
            &root.bearer,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "admins cannot end their own sessions through the admin operations",
    )
    .await;
    // Nothing was ended: the admin's session still works.
    app.get_with("/users/me", &root.bearer)
        .await
        .assert_status_is_ok();
    // Other accounts are theirs to act on.
    for (method, path) in [
        (Method::POST, format!("/admin/users/{}/mfa/reset", ann.id)),
        (Method::DELETE, format!("/admin/users/{}/sessions", ann.id)),
    ] {
        app.call(method, &path, &root.bearer, None)
            .await
            .assert_status(StatusCode::NO_CONTENT);
    }
    app.get_with("/users/me", &ann.bearer)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn the_last_active_admin_cannot_delete_their_account(app: TestApp) {
    let root = app.admin("root@example.com").await;

    assert_detail(
        app.call(
            Method::DELETE,
            "/users/me",
            &root.bearer,
            Some(json!({"current_password": PASSWORD})),
        )
        .await,
        StatusCode::CONFLICT,
        LAST_ADMIN,
    )
    .await;
    app.get_with("/users/me", &root.bearer)
        .await
        .assert_status_is_ok();

    // With a second admin, either may go.
    let other = app.admin("other@example.com").await;
    app.call(
        Method::DELETE,
        "/users/me",
        &root.bearer,
        Some(json!({"current_password": PASSWORD})),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    assert_detail(
        app.call(
            Method::DELETE,
            "/users/me",
            &other.bearer,
            Some(json!({"current_password": PASSWORD})),
        )
        .await,
        StatusCode::CONFLICT,
        LAST_ADMIN,
    )
    .await;
}

/// The active admins, as an admin lists them.
async fn active_admins(app: &TestApp, admin: &TestUser) -> Vec<i64> {
    let response = app.get_with("/admin/users?limit=100", &admin.bearer).await;
    response.assert_status_is_ok();
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|user| user["is_active"] == true && user["is_admin"] == true)
        .map(|user| user["id"].as_i64().unwrap())
        .collect()
}

async fn two_admins_demoting_each_other_at_once_leave_exactly_one(app: TestApp) {
    let mut survivor: Option<TestUser> = None;
    for round in 0..10 {
        let ann = app.admin(&format!("ann{round}@example.com")).await;
        let bob = app.admin(&format!("bob{round}@example.com")).await;
        // Only the two of them are active admins when they race.
        if let Some(previous) = &survivor {
            app.call(
                Method::PATCH,
                &format!("/admin/users/{}", previous.id),
                &ann.bearer,
                Some(json!({"is_admin": false})),
            )
            .await
            .assert_status_is_ok();
        }
        let bob_change = if round % 2 == 0 {
            json!({"is_admin": false})
        } else {
            json!({"is_active": false})
        };
        let (bob_path, ann_path) = (
            format!("/admin/users/{}", bob.id),
            format!("/admin/users/{}", ann.id),
        );
        let (by_ann, by_bob) = tokio::join!(
            app.call(Method::PATCH, &bob_path, &ann.bearer, Some(bob_change),),
            app.call(
                Method::PATCH,
                &ann_path,
                &bob.bearer,
                Some(json!({"is_admin": false})),
            ),
        );
        let statuses = [by_ann.0.status(), by_bob.0.status()];
        // The loser is refused by the database (409), or, if the winner's change landed
        // before the loser's request was authenticated, for no longer being an admin (403) or,
        // when the winner disabled the loser, for no longer having a session (401).
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(won, 1, "round {round}: {statuses:?}");
        for (status, response) in statuses.iter().zip([by_ann, by_bob]) {
            if *status == StatusCode::CONFLICT {
                assert_eq!(json_of(response).await, json!({"detail": LAST_ADMIN}));
            } else {
                assert!(
                    matches!(
                        *status,
                        StatusCode::OK | StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
                    ),
                    "round {round}: {statuses:?}"
                );
            }
        }
        let winner = if statuses[0] == StatusCode::OK {
            ann
        } else {
            bob
        };
        assert_eq!(
            active_admins(&app, &winner).await,
            [winner.id],
            "round {round}"
        );
        survivor = Some(winner);
    }
}

/// The ids of the caller's sessions on one page of `query`.
async fn session_ids(app: &TestApp, user: &TestUser, query: &str) -> Vec<String> {
    let response = app
        .get_with(&format!("/users/me/sessions{query}"), &user.bearer)
        .await;
    response.assert_status_is_ok();
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|session| session["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sid(user: &TestUser) -> String {
    claims_of(&user.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn the_101st_login_ends_the_least_recently_used_session(app: TestApp) {
    let first = app.user("ann@example.com").await;
    let second = app.log_in_again(&first, None).await;
    let mut logins = vec![first, second];
    for _ in 2..100 {
        logins.push(app.log_in_again(&logins[0], None).await);
    }
    // The first login is used again (a refresh), so the second is now the least recently used.
    let refreshed = json_of(app.refresh(&logins[0].refresh_token).await).await;
    let listed = session_ids(&app, &logins[99], "").await;
    assert_eq!(listed.len(), 100, "the default page is the whole list");

    let newest = app.log_in_again(&logins[0], None).await;

    let listed = session_ids(&app, &newest, "").await;
    assert_eq!(listed.len(), 100);
    assert_eq!(listed[0], sid(&newest));
    assert!(
        !listed.contains(&sid(&logins[1])),
        "the least recently used"
    );
    assert!(listed.contains(&sid(&logins[0])), "used lately");
    // The ended session's tokens fail at once; the others still work.
    assert_oauth_error(app.refresh(&logins[1].refresh_token).await, "invalid_grant").await;
    app.get_with("/users/me", &logins[1].bearer)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.refresh(refreshed["refresh_token"].as_str().unwrap())
        .await
        .assert_status_is_ok();
    app.get_with("/users/me", &logins[2].bearer)
        .await
        .assert_status_is_ok();
    // The account's owner can see why.
    let events = json_of(
        app.get_with("/users/me/events?limit=5", &newest.bearer)
            .await,
    )
    .await;
    assert!(
        events.as_array().unwrap().iter().any(|event| {
            event["type"] == "session_revoked" && event["session_id"] == sid(&logins[1])
        }),
        "{events}"
    );
}

async fn create_token(app: &TestApp, user: &TestUser, name: &str) -> poem::test::TestResponse {
    app.call(
        Method::POST,
        "/users/me/tokens",
        &user.bearer,
        Some(json!({"name": name, "scopes": "posts:read", "expires_in_days": 30, "current_password": PASSWORD})),
    )
    .await
}

async fn token_ids(app: &TestApp, user: &TestUser, query: &str) -> Vec<i64> {
    let response = app
        .get_with(&format!("/users/me/tokens{query}"), &user.bearer)
        .await;
    response.assert_status_is_ok();
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_i64().unwrap())
        .collect()
}

async fn the_51st_personal_token_is_refused(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    for i in 0..50 {
        create_token(&app, &ann, &format!("token {i}"))
            .await
            .assert_status(StatusCode::CREATED);
    }

    assert_detail(
        create_token(&app, &ann, "one too many").await,
        StatusCode::CONFLICT,
        "an account holds at most 50 personal access tokens: revoke one first",
    )
    .await;
    let listed = token_ids(&app, &ann, "").await;
    assert_eq!(listed.len(), 50, "the default page is the whole list");
    // Another account has its own budget, and revoking one makes room.
    create_token(&app, &bob, "bob's")
        .await
        .assert_status(StatusCode::CREATED);
    app.call(
        Method::DELETE,
        &format!("/users/me/tokens/{}", listed[0]),
        &ann.bearer,
        None,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    create_token(&app, &ann, "in its place")
        .await
        .assert_status(StatusCode::CREATED);
}

async fn sessions_and_tokens_page_newest_first_in_disjoint_pages(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    for _ in 0..4 {
        app.log_in_again(&ann, None).await;
    }
    for i in 0..5 {
        create_token(&app, &ann, &format!("token {i}"))
            .await
            .assert_status(StatusCode::CREATED);
    }

    let whole = session_ids(&app, &ann, "").await;
    assert_eq!(whole.len(), 5);
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = session_ids(&app, &ann, &query).await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        query = format!("?limit=2&before={last}");
        paged.extend(page);
    }
    assert_eq!(paged, whole, "the pages, in order, are the whole list");
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 5, "disjoint");
    assert_eq!(paged[4], sid(&ann), "newest first: the first login is last");

    let whole = token_ids(&app, &ann, "").await;
    assert!(
        whole.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = token_ids(&app, &ann, &query).await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        query = format!("?limit=2&before={last}");
        paged.extend(page);
    }
    assert_eq!(paged, whole);
    assert_eq!(paged.len(), 5);
}

async fn a_page_size_out_of_range_is_422(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    for path in ["/users/me/sessions", "/users/me/tokens"] {
        for limit in ["0", "201", "-1", "many"] {
            let response = app
                .get_with(&format!("{path}?limit={limit}"), &ann.bearer)
                .await;
            response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
            let body: Value = json_of(response).await;
            // The answer names the offending parameter.
            assert!(body["detail"].to_string().contains("limit"), "{body}");
        }
        for limit in ["1", "200"] {
            app.get_with(&format!("{path}?limit={limit}"), &ann.bearer)
                .await
                .assert_status_is_ok();
        }
    }
    // A `before` that names none of the caller's sessions, a UUID or not, gives an empty page.
    for before in ["not-a-session", "00000000-0000-0000-0000-000000000000"] {
        let response = app
            .get_with(&format!("/users/me/sessions?before={before}"), &ann.bearer)
            .await;
        response.assert_status_is_ok();
        assert_eq!(json_of(response).await, json!([]));
    }
}
