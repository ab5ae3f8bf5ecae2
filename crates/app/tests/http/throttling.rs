//! Brute-force throttling: failed logins per username and per address, registrations per
//! address, and which client address is believed.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::test::TestResponse;
use serde_json::json;
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;

use crate::support::*;

// SQLite's instance counts in memory; on PostgreSQL the counts live in the database.
on_both_backends!(
    failed_logins_are_throttled_per_username_alike_for_existing_and_unknown_ones,
    failed_logins_are_throttled_per_client_address,
    without_trusted_proxies_a_forged_forwarded_address_dodges_nothing,
    successful_logins_are_not_counted,
    registrations_are_throttled_per_client_address,
);

/// An app on a fresh `backend` database with `args`.
async fn throttled(backend: Backend, args: &[&str]) -> TestApp {
    TestApp::on(Arc::new(TestDb::new(backend).await), args)
}

async fn login_from(app: &TestApp, address: &str, username: &str, password: &str) -> TestResponse {
    app.client
        .post("/login")
        .header("x-forwarded-for", address)
        .content_type("application/x-www-form-urlencoded")
        .body(format!(
            "username={}&password={}",
            urlencode(username),
            urlencode(password)
        ))
        .send()
        .await
}

async fn failed_logins_are_throttled_per_username_alike_for_existing_and_unknown_ones(
    backend: Backend,
) {
    let app = throttled(
        backend,
        &[
            "--login-max-failures-per-username",
            "3",
            "--login-max-failures-per-address",
            "0",
        ],
    )
    .await;
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    // Interleaved, so that both names run out at nearly the same moment.
    for _ in 0..3 {
        for username in ["ann@example.com", "nobody@example.com"] {
            assert_oauth_error(
                login_from(&app, "", username, "wrong guess").await,
                "invalid_grant",
            )
            .await;
        }
    }
    let mut existing = answer(login_from(&app, "", "ann@example.com", "wrong guess").await).await;
    let mut unknown = answer(login_from(&app, "", "nobody@example.com", "wrong guess").await).await;
    assert_eq!(existing.0, StatusCode::TOO_MANY_REQUESTS);
    // Retry-After counts down from each name's own last failure, which were a hash apart: it
    // may differ by the second that passed in between, and is compared apart from the rest.
    let retry_after = |answer: &mut (StatusCode, Vec<(String, String)>, Vec<u8>)| -> u64 {
        let at = answer
            .1
            .iter()
            .position(|(name, _)| name == "retry-after")
            .unwrap();
        answer.1.remove(at).1.parse().unwrap()
    };
    let (existing_wait, unknown_wait) = (retry_after(&mut existing), retry_after(&mut unknown));
    assert!((1..=100).contains(&existing_wait), "{existing_wait}");
    assert!(
        existing_wait.abs_diff(unknown_wait) <= 1,
        "{existing_wait} and {unknown_wait}"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&existing.2).unwrap()["error"],
        "slow_down"
    );
    assert_eq!(
        existing, unknown,
        "throttling must not tell existing accounts from unknown ones"
    );

    // Even the right password waits: the throttle comes before the password is checked.
    let right = login_from(&app, "", " ANN@example.com", PASSWORD).await;
    right.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&right, "cache-control").as_deref(), Some("no-store"));
    // Other usernames are not affected.
    app.register("bob@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    login_from(&app, "", "bob@example.com", PASSWORD)
        .await
        .assert_status_is_ok();
}

async fn failed_logins_are_throttled_per_client_address(backend: Backend) {
    let app = throttled(
        backend,
        &[
            "--login-max-failures-per-username",
            "0",
            "--login-max-failures-per-address",
            "3",
            "--trusted-proxy-hops",
            "1",
        ],
    )
    .await;
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    for username in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_oauth_error(
            login_from(&app, "203.0.113.1", username, "guess").await,
            "invalid_grant",
        )
        .await;
    }
    let blocked = login_from(&app, "203.0.113.1", "ann@example.com", PASSWORD).await;
    blocked.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&blocked, "retry-after").is_some());
    login_from(&app, "198.51.100.2", "ann@example.com", PASSWORD)
        .await
        .assert_status_is_ok();
    // The proxy appends the address it saw; what the client wrote before it is not believed.
    login_from(
        &app,
        "198.51.100.2, 203.0.113.1",
        "ann@example.com",
        PASSWORD,
    )
    .await
    .assert_status(StatusCode::TOO_MANY_REQUESTS);
}

async fn without_trusted_proxies_a_forged_forwarded_address_dodges_nothing(backend: Backend) {
    let app = throttled(
        backend,
        &[
            "--login-max-failures-per-username",
            "0",
            "--login-max-failures-per-address",
            "2",
        ],
    )
    .await;
    for (i, address) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let response = login_from(&app, address, &format!("user{i}@example.com"), "guess").await;
        if i < 2 {
            assert_oauth_error(response, "invalid_grant").await;
        } else {
            response.assert_status(StatusCode::TOO_MANY_REQUESTS);
        }
    }
}

async fn successful_logins_are_not_counted(backend: Backend) {
    let app = throttled(
        backend,
        &[
            "--login-max-failures-per-username",
            "2",
            "--login-max-failures-per-address",
            "2",
        ],
    )
    .await;
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    for _ in 0..6 {
        login_from(&app, "", "ann@example.com", PASSWORD)
            .await
            .assert_status_is_ok();
    }
}

async fn registrations_are_throttled_per_client_address(backend: Backend) {
    let app = throttled(
        backend,
        &[
            "--registrations-per-address",
            "2",
            "--trusted-proxy-hops",
            "1",
        ],
    )
    .await;
    let register = |address: &'static str, email: &'static str| {
        app.client
            .post("/users")
            .header("x-forwarded-for", address)
            .body_json(&json!({"email": email, "password": PASSWORD}))
            .send()
    };
    register("203.0.113.1", "a@example.com")
        .await
        .assert_status(StatusCode::CREATED);
    register("203.0.113.1", "b@example.com")
        .await
        .assert_status(StatusCode::CREATED);
    let refused = register("203.0.113.1", "c@example.com").await;
    assert!(header(&refused, "retry-after").is_some());
    assert_detail(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too many registrations from this address; try again later",
    )
    .await;
    register("198.51.100.2", "c@example.com")
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_past_the_hashing_queue_are_503_temporarily_unavailable_not_a_longer_wait() {
    let app = throttled(
        Backend::Sqlite,
        &[
            "--login-max-failures-per-username",
            "0",
            "--login-max-failures-per-address",
            "0",
            "--password-hash-concurrency",
            "1",
            "--password-hash-queue",
            "1",
        ],
    )
    .await;
    let ann = app.user("ann@example.com").await;
    let form = format!("username={}&password=wrong+horse", urlencode(&ann.email));
    let answers = futures_util::future::join_all((0..12).map(|_| app.login_form(&form))).await;
    let mut unavailable = 0;
    for response in answers {
        match response.0.status() {
            StatusCode::BAD_REQUEST => {
                assert_oauth_error(response, "invalid_grant").await;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                unavailable += 1;
                assert_eq!(header(&response, "retry-after").as_deref(), Some("2"));
                assert_eq!(
                    header(&response, "cache-control").as_deref(),
                    Some("no-store")
                );
                let body = json_of(response).await;
                assert_eq!(body["error"], "temporarily_unavailable", "{body}");
            }
            other => panic!("a login answered {other}"),
        }
    }
    assert!(unavailable > 0, "twelve logins fitted a queue of one");
    // The queue drains: the next login is served.
    app.log_in_again(&ann, None).await;
}
