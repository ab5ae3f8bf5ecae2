//! Brute-force throttling: failed logins per username and per address, registrations per
//! address, and which client address is believed; bursts of guesses, and wrong passwords at
//! the account's own endpoints.

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use poem::test::TestResponse;
use serde_json::{Value, json};
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;

use crate::support::*;

// SQLite's instance counts in memory; on PostgreSQL the counts live in the database.
warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    warden_adapters::testing::with_backend =>
    failed_logins_are_throttled_per_username_alike_for_existing_and_unknown_ones,
    failed_logins_are_throttled_per_client_address,
    without_trusted_proxies_a_forged_forwarded_address_dodges_nothing,
    successful_logins_are_not_counted,
    registrations_are_throttled_per_client_address,
    a_burst_of_wrong_passwords_gets_no_more_checks_than_the_budget,
    after_a_burst_the_owner_waits_no_longer_than_the_window,
    wrong_passwords_at_a_password_change_count_as_failed_logins,
    wrong_passwords_at_an_email_change_count_as_failed_logins,
    wrong_passwords_at_an_account_deletion_count_as_failed_logins,
    wrong_passwords_at_a_new_personal_token_count_as_failed_logins,
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

/// Sends `count` wrong passwords for `username` from `address` at once, and counts the answers
/// by status: a 400 `invalid_grant` is a password that was checked (hashed), a 429 one that
/// was refused before.
async fn burst(app: &TestApp, address: &str, username: &str, count: usize) -> (usize, usize) {
    let guesses: Vec<String> = (0..count).map(|i| format!("guess {i}")).collect();
    let answers = futures_util::future::join_all(
        guesses
            .iter()
            .map(|guess| login_from(app, address, username, guess)),
    )
    .await;
    let (mut checked, mut refused) = (0, 0);
    for response in answers {
        match response.0.status() {
            StatusCode::BAD_REQUEST => {
                assert_oauth_error(response, "invalid_grant").await;
                checked += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(header(&response, "retry-after").is_some());
                refused += 1;
            }
            other => panic!("a login answered {other}"),
        }
    }
    (checked, refused)
}

async fn a_burst_of_wrong_passwords_gets_no_more_checks_than_the_budget(backend: Backend) {
    // The defaults: 5 failures per username, 20 per address, over 300 s.
    let app = throttled(backend, &["--trusted-proxy-hops", "1"]).await;
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    let (checked, refused) = burst(&app, "203.0.113.1", "ann@example.com", 60).await;
    assert_eq!(
        (checked, refused),
        (5, 55),
        "60 racing guesses must get the username's 5 checks and no more"
    );
    // Even the right password waits now.
    login_from(&app, "198.51.100.2", "ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    // The refused 55 took nothing from the address's budget of 20: another username from it
    // still gets its own 5 checks.
    let (checked, _) = burst(&app, "203.0.113.1", "bob@example.com", 10).await;
    assert_eq!(checked, 5);
}

async fn after_a_burst_the_owner_waits_no_longer_than_the_window(backend: Backend) {
    // 3 failures per 3 s: a unit comes back every second.
    let app = throttled(
        backend,
        &[
            "--login-max-failures-per-username",
            "3",
            "--login-max-failures-per-address",
            "0",
            "--login-failure-window-seconds",
            "3",
        ],
    )
    .await;
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let (checked, _) = burst(&app, "", "ann@example.com", 60).await;
    assert!(
        checked <= 3,
        "{checked} guesses checked against a budget of 3"
    );
    let locked = login_from(&app, "", "ann@example.com", PASSWORD).await;
    locked.assert_status(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&locked, "retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after <= 1,
        "the burst must not lengthen the wait past one unit's return: {retry_after} s"
    );
    // Within the documented window of the burst, the owner is in again.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    login_from(&app, "", "ann@example.com", PASSWORD)
        .await
        .assert_status_is_ok();
}

async fn wrong_passwords_at_a_password_change_count_as_failed_logins(backend: Backend) {
    wrong_passwords_count_as_failed_logins(
        backend,
        Method::PUT,
        "/users/me/password",
        |current| json!({"current_password": current, "new_password": "a new horse"}),
    )
    .await;
}

async fn wrong_passwords_at_an_email_change_count_as_failed_logins(backend: Backend) {
    wrong_passwords_count_as_failed_logins(
        backend,
        Method::PATCH,
        "/users/me",
        |current| json!({"email": "thief@example.com", "current_password": current}),
    )
    .await;
}

async fn wrong_passwords_at_an_account_deletion_count_as_failed_logins(backend: Backend) {
    wrong_passwords_count_as_failed_logins(
        backend,
        Method::DELETE,
        "/users/me",
        |current| json!({ "current_password": current }),
    )
    .await;
}

async fn wrong_passwords_at_a_new_personal_token_count_as_failed_logins(backend: Backend) {
    wrong_passwords_count_as_failed_logins(backend, Method::POST, "/users/me/tokens", |current| {
        json!({
            "name": "backdoor", "scopes": "profile", "expires_in_days": 365,
            "current_password": current,
        })
    })
    .await;
}

/// Guesses the current password at `method path` (whose body `body` makes from a guess) with
/// the default budget (5 failures per username over 300 s): the sixth guess is 429, so is the
/// right password then, and so is a login of the account.
async fn wrong_passwords_count_as_failed_logins(
    backend: Backend,
    method: Method,
    path: &str,
    body: impl Fn(&str) -> Value,
) {
    let app = throttled(backend, &[]).await;
    let ann = app.user("ann@example.com").await;
    let guess = |current: &str| app.call(method.clone(), path, &ann.bearer, Some(body(current)));
    for i in 0..5 {
        assert_detail(
            guess(&format!("guess {i}")).await,
            StatusCode::BAD_REQUEST,
            "Incorrect password",
        )
        .await;
    }
    let refused = guess("guess 5").await;
    assert!(header(&refused, "retry-after").is_some(), "{path}");
    assert_detail(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts; try again later",
    )
    .await;
    // The right password is refused too until a unit comes back (a minute, by default), and
    // nothing changed.
    guess(PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    app.get_with("/users/me", &ann.bearer)
        .await
        .assert_status_is_ok();
    // The same budget as the account's logins.
    login_from(&app, "", "ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
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
