//! Email (contract section 12), against a real SMTP server on loopback (aiosmtpd): the tests
//! read the mail it received. Nothing here mocks SMTP.

use std::time::{Duration, Instant};

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};
use warden_adapters::Backend;
use warden_app::testing::{Mail, MailCatcher};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    warden_adapters::testing::with_backend =>
    registration_mails_a_token_that_verifies_the_address_once,
    a_reset_mail_arrives_and_its_token_works_once,
    reset_requests_answer_alike_whether_or_not_the_account_exists,
    reset_requests_are_throttled_per_address_and_per_email,
    an_email_change_waits_for_the_new_address_and_tells_the_old,
    a_change_to_an_address_taken_meanwhile_is_a_conflict,
    a_verification_mail_is_sent_again_until_the_address_is_verified,
    with_verified_email_required_an_unverified_account_cannot_log_in,
    a_mail_server_outage_never_holds_a_request_and_the_mail_arrives_later,
    without_mail_the_calls_answer_501_and_changes_are_immediate,
    a_mail_that_fails_every_try_is_given_up_and_counted,
);

const RESET_ANSWER: &str = "if the account exists, a message is on its way";

pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> poem::test::TestResponse {
    app.client.post(path).body_json(&body).send().await
}

pub(crate) async fn me(app: &TestApp, user: &TestUser) -> Value {
    let response = app.get_with("/users/me", &user.bearer).await;
    response.assert_status_is_ok();
    json_of(response).await
}

async fn event_types(app: &TestApp, user: &TestUser) -> Vec<String> {
    let response = app.get_with("/users/me/events", &user.bearer).await;
    response.assert_status_is_ok();
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

/// The mails to `to` with `subject`, once there are `count`.
pub(crate) async fn mails(
    catcher: &MailCatcher,
    to: &str,
    subject: &str,
    count: usize,
) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<Mail> = catcher
            .mails()
            .into_iter()
            .filter(|mail| mail.to.eq_ignore_ascii_case(to) && mail.subject == subject)
            .collect();
        if found.len() >= count || Instant::now() > deadline {
            assert_eq!(found.len(), count, "mails to {to}: {:?}", catcher.mails());
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn disable(app: &TestApp, user: &TestUser) {
    let admin = app.admin("root@example.com").await;
    app.call(
        Method::PATCH,
        &format!("/admin/users/{}", user.id),
        &admin.bearer,
        Some(json!({"is_active": false})),
    )
    .await
    .assert_status_is_ok();
}

async fn registration_mails_a_token_that_verifies_the_address_once(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("Ann@example.com").await;
    assert_eq!(me(&app, &ann).await["email_verified"], json!(false));

    let welcome = mails(&catcher, "Ann@example.com", "Verify your email address", 1).await;
    let token = welcome[0].token();

    let verified = post(&app, "/email-verification/confirm", json!({"token": token})).await;
    verified.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &ann).await["email_verified"], json!(true));
    assert!(
        event_types(&app, &ann)
            .await
            .contains(&"email_verified".to_owned())
    );
    let again = post(&app, "/email-verification/confirm", json!({"token": token})).await;
    assert_detail(again, StatusCode::BAD_REQUEST, "invalid or expired token").await;
    let junk = post(
        &app,
        "/email-verification/confirm",
        json!({"token": "junk"}),
    )
    .await;
    assert_detail(junk, StatusCode::BAD_REQUEST, "invalid or expired token").await;
}

async fn a_reset_mail_arrives_and_its_token_works_once(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("ann@example.com").await;
    let other_device = app.log_in_again(&ann, None).await;

    let requested = post(
        &app,
        "/password-reset",
        json!({"email": " ANN@example.com "}),
    )
    .await;
    requested.assert_status(StatusCode::ACCEPTED);
    assert_eq!(json_of(requested).await, json!({ "detail": RESET_ANSWER }));
    let reset = mails(&catcher, "ann@example.com", "Reset your Warden password", 1).await;
    let token = reset[0].token();

    let short = json!({"token": token, "new_password": "short"});
    let refused = post(&app, "/password-reset/confirm", short).await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let body = json!({"token": token, "new_password": "a brand new password"});
    post(&app, "/password-reset/confirm", body.clone())
        .await
        .assert_status(StatusCode::NO_CONTENT);

    // Every session ended; the old password is gone, the new one works.
    for user in [&ann, &other_device] {
        let ended = app.get_with("/users/me", &user.bearer).await;
        ended.assert_status(StatusCode::UNAUTHORIZED);
    }
    let old = app
        .login_form("username=ann%40example.com&password=correct%20horse")
        .await;
    assert_oauth_error(old, "invalid_grant").await;
    let renewed = app
        .log_in("ann@example.com", "a brand new password", None)
        .await;
    assert_eq!(me(&app, &renewed).await["email_verified"], json!(true));
    assert!(
        event_types(&app, &renewed)
            .await
            .contains(&"password_reset".to_owned())
    );

    let replayed = post(&app, "/password-reset/confirm", body).await;
    assert_detail(
        replayed,
        StatusCode::BAD_REQUEST,
        "invalid or expired token",
    )
    .await;
}

async fn reset_requests_answer_alike_whether_or_not_the_account_exists(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let dis = app.user("dis@example.com").await;
    disable(&app, &dis).await;
    app.user("ann@example.com").await;

    let mut answers = Vec::new();
    for email in ["nobody@example.com", "dis@example.com", "ann@example.com"] {
        let response = post(&app, "/password-reset", json!({ "email": email })).await;
        let status = response.0.status();
        let content_type = header(&response, "content-type");
        let body = response.0.into_body().into_bytes().await.unwrap();
        answers.push((status, content_type, body));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    assert_eq!(answers[0].0, StatusCode::ACCEPTED);

    // Mail is sent in order: once the active account's has arrived, the others would have.
    mails(&catcher, "ann@example.com", "Reset your Warden password", 1).await;
    let resets: Vec<String> = catcher
        .mails()
        .into_iter()
        .filter(|mail| mail.subject == "Reset your Warden password")
        .map(|mail| mail.to)
        .collect();
    assert_eq!(resets, ["ann@example.com"]);
}

async fn reset_requests_are_throttled_per_address_and_per_email(backend: Backend) {
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
    for _ in 0..2 {
        let response = post(&app, "/password-reset", json!({"email": "ann@example.com"})).await;
        response.assert_status(StatusCode::ACCEPTED);
    }
    let per_email = post(&app, "/password-reset", json!({"email": "Ann@Example.com"})).await;
    per_email.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&per_email, "retry-after").is_some());
    // Another email from the same address: the address's fourth request (the refused one
    // counted for the address).
    post(&app, "/password-reset", json!({"email": "bob@example.com"}))
        .await
        .assert_status(StatusCode::ACCEPTED);
    let per_address = post(&app, "/password-reset", json!({"email": "cy@example.com"})).await;
    per_address.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        json_of(per_address).await,
        json!({"detail": "too many messages asked for; try again later"})
    );
}

async fn an_email_change_waits_for_the_new_address_and_tells_the_old(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("ann@example.com").await;
    app.user("bob@example.com").await;

    let taken = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "BOB@example.com", "current_password": PASSWORD})),
        )
        .await;
    taken.assert_status(StatusCode::CONFLICT);
    let asked = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "New@example.com", "current_password": PASSWORD})),
        )
        .await;
    asked.assert_status(StatusCode::ACCEPTED);
    assert_eq!(me(&app, &ann).await["email"], json!("ann@example.com"));

    let confirm = mails(
        &catcher,
        "New@example.com",
        "Confirm your new email address",
        1,
    )
    .await;
    let notice = mails(
        &catcher,
        "ann@example.com",
        "Your email address is being changed",
        1,
    )
    .await;
    assert!(
        !notice[0].text.contains(&confirm[0].token()),
        "the old address got the token"
    );
    let token = confirm[0].token();
    post(&app, "/email-change/confirm", json!({ "token": token }))
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let now = me(&app, &ann).await;
    assert_eq!(now["email"], json!("New@example.com"));
    assert_eq!(now["email_verified"], json!(true));
    assert!(
        event_types(&app, &ann)
            .await
            .contains(&"email_changed".to_owned())
    );
    app.log_in("new@example.com", PASSWORD, None).await;
    let again = post(&app, "/email-change/confirm", json!({ "token": token })).await;
    assert_detail(again, StatusCode::BAD_REQUEST, "invalid or expired token").await;
}

async fn a_change_to_an_address_taken_meanwhile_is_a_conflict(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("ann@example.com").await;
    app.call(
        Method::PATCH,
        "/users/me",
        &ann.bearer,
        Some(json!({"email": "new@example.com", "current_password": PASSWORD})),
    )
    .await
    .assert_status(StatusCode::ACCEPTED);
    let token = mails(
        &catcher,
        "new@example.com",
        "Confirm your new email address",
        1,
    )
    .await[0]
        .token();
    app.user("new@example.com").await;

    let conflict = post(&app, "/email-change/confirm", json!({ "token": token })).await;
    assert_detail(
        conflict,
        StatusCode::CONFLICT,
        "a user with this email already exists",
    )
    .await;
    assert_eq!(me(&app, &ann).await["email"], json!("ann@example.com"));
}

async fn a_verification_mail_is_sent_again_until_the_address_is_verified(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &[]).await;
    let ann = app.user("ann@example.com").await;
    let resent = app
        .call(
            Method::POST,
            "/users/me/email-verification",
            &ann.bearer,
            None,
        )
        .await;
    resent.assert_status(StatusCode::ACCEPTED);

    let both = mails(&catcher, "ann@example.com", "Verify your email address", 2).await;
    assert_ne!(both[0].token(), both[1].token());
    post(
        &app,
        "/email-verification/confirm",
        json!({"token": both[1].token()}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    // The token holder's request carries the account as it is now.
    let verified = app.log_in_again(&ann, None).await;
    let refused = app
        .call(
            Method::POST,
            "/users/me/email-verification",
            &verified.bearer,
            None,
        )
        .await;
    assert_detail(
        refused,
        StatusCode::CONFLICT,
        "the email address is already verified",
    )
    .await;
}

async fn with_verified_email_required_an_unverified_account_cannot_log_in(backend: Backend) {
    let catcher = MailCatcher::start().await;
    let app = TestApp::with_mail(backend, &catcher, &["--require-verified-email", "true"]).await;
    app.register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    let wrong = app
        .login_form("username=ann%40example.com&password=wrong%20horse")
        .await;
    let wrong = assert_oauth_error(wrong, "invalid_grant").await;
    assert_eq!(wrong["error_description"], "incorrect username or password");
    let right = app
        .login_form("username=ann%40example.com&password=correct%20horse")
        .await;
    let right = assert_oauth_error(right, "invalid_grant").await;
    assert_eq!(right["error_description"], "email address not verified");

    let token = mails(&catcher, "ann@example.com", "Verify your email address", 1).await[0].token();
    post(
        &app,
        "/email-verification/confirm",
        json!({ "token": token }),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.log_in("ann@example.com", PASSWORD, None).await;
}

/// An SMTP server that accepts connections and never says a word: a synchronous send would
/// wait for the whole `SMTP_TIMEOUT_SECONDS`. Dropping it closes them all.
struct SilentServer(tokio::task::JoinHandle<()>);

impl SilentServer {
    async fn on(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }))
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn a_mail_server_outage_never_holds_a_request_and_the_mail_arrives_later(backend: Backend) {
    let mut catcher = MailCatcher::start().await;
    catcher.stop();
    let app = TestApp::with_mail(
        backend,
        &catcher,
        &["--smtp-timeout-seconds", "20", "--mail-retry-seconds", "1"],
    )
    .await;
    let port: u16 = catcher.url().rsplit(':').next().unwrap().parse().unwrap();
    let silent = SilentServer::on(port).await;
    let ann = app.user("ann@example.com").await;

    let started = Instant::now();
    let requested = post(&app, "/password-reset", json!({"email": "ann@example.com"})).await;
    requested.assert_status(StatusCode::ACCEPTED);
    // Far less than the 20 s a send to the silent server takes to fail.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let resent = app
        .call(
            Method::POST,
            "/users/me/email-verification",
            &ann.bearer,
            None,
        )
        .await;
    resent.assert_status(StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // The server comes back: what was queued arrives, retried with backoff.
    drop(silent);
    tokio::time::sleep(Duration::from_millis(200)).await;
    catcher.restart().await;
    mails(&catcher, "ann@example.com", "Reset your Warden password", 1).await[0].token();
    mails(&catcher, "ann@example.com", "Verify your email address", 2).await;
    // Counted once the server has taken the mail, which may be just after it is stored.
    metrics_once_they_show(&app, "warden_mail_sent_total{kind=\"password_reset\"}").await;
    metrics_once_they_show(&app, "warden_mail_retries_total{kind=").await;
}

/// `/metrics` once it shows `needle`; waits up to 30 seconds.
async fn metrics_once_they_show(app: &TestApp, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = app.client.get("/metrics").send().await;
        let metrics = metrics.0.into_body().into_string().await.unwrap();
        if metrics.contains(needle) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "no {needle} in {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn without_mail_the_calls_answer_501_and_changes_are_immediate(backend: Backend) {
    let app = TestApp::new(backend).await;
    let ann = app.user("ann@example.com").await;
    for (path, body) in [
        ("/password-reset", json!({"email": "ann@example.com"})),
        (
            "/password-reset/confirm",
            json!({"token": "t", "new_password": "long enough"}),
        ),
        ("/email-verification/confirm", json!({"token": "t"})),
        ("/email-change/confirm", json!({"token": "t"})),
    ] {
        let response = post(&app, path, body).await;
        assert_detail(
            response,
            StatusCode::NOT_IMPLEMENTED,
            "email is not configured",
        )
        .await;
    }
    let resend = app
        .call(
            Method::POST,
            "/users/me/email-verification",
            &ann.bearer,
            None,
        )
        .await;
    assert_detail(
        resend,
        StatusCode::NOT_IMPLEMENTED,
        "email is not configured",
    )
    .await;

    assert_eq!(me(&app, &ann).await["email_verified"], json!(false));
    let changed = app
        .call(
            Method::PATCH,
            "/users/me",
            &ann.bearer,
            Some(json!({"email": "new@example.com", "current_password": PASSWORD})),
        )
        .await;
    changed.assert_status_is_ok();
    let changed = json_of(changed).await;
    assert_eq!(changed["email"], json!("new@example.com"));
    assert_eq!(changed["email_verified"], json!(false));
}

async fn a_mail_that_fails_every_try_is_given_up_and_counted(backend: Backend) {
    let mut args = vec!["--mail-max-attempts", "2", "--mail-retry-seconds", "1"];
    args.extend(warden_app::testing::UNREACHABLE_MAIL);
    let app = TestApp::on(
        std::sync::Arc::new(warden_adapters::testing::TestDb::new(backend).await),
        &args,
    );
    // Registration queues a verification mail, which the discard port refuses twice.
    app.user("ann@example.com").await;

    let metrics = metrics_once_they_show(
        &app,
        "warden_mail_failed_total{kind=\"email_verification\"}",
    )
    .await;
    assert!(
        metrics.contains("warden_mail_retries_total{kind=\"email_verification\"}"),
        "{metrics}"
    );
}
