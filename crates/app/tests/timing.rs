//! Enumeration through timing: unknown email, wrong password and disabled account must take
//! the same time to refuse (the unknown email is checked against a dummy hash of the same
//! cost), and a password reset request the same time to answer for an unknown, a disabled and
//! an active account (the lookup, and the active one's token and mail, happen after the
//! answer). A benchmark-style check: many interleaved tries of each, and the medians may differ
//! by at most 5 % for logins, whose hash dominates, and 12 % for reset requests, which take
//! under a millisecond, where noise weighs more (with the lookup in the request and only the
//! write after it, an active account answered 14 to 33 % slower on SQLite). It runs alone (see
//! `.config/nextest.toml`), but the machine may still be busy with something else: a
//! measurement over the bound is repeated, up to three in all, and the check fails only if
//! every one is over. A real difference (without the dummy hash the unknown email answers 30
//! times faster) shows in every measurement; passing load does not.

use std::time::{Duration, Instant};

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use serde_json::json;
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;
use warden_app::testing::TestApp;

const ROUNDS: usize = 41;
const ATTEMPTS: usize = 3;
const MAX_LOGIN_DIFFERENCE: f64 = 0.05;
const MAX_RESET_DIFFERENCE: f64 = 0.12;

/// One timed request: a login form, or a reset request for an email.
#[derive(Clone, Copy)]
enum Probe {
    Login(&'static str),
    Reset(&'static str),
}

impl Probe {
    async fn send(self, app: &TestApp) -> poem::test::TestResponse {
        match self {
            Self::Login(form) => app.login_form(form).await,
            Self::Reset(email) => {
                app.client
                    .post("/password-reset")
                    .body_json(&json!({ "email": email }))
                    .send()
                    .await
            }
        }
    }

    /// The pause before the request: for a reset, longer than the previous reset's deferred
    /// work (50 ms, then a lookup and a write) takes to finish, so that each time is that of
    /// one request alone. Logins leave nothing behind.
    fn settle(self) -> Duration {
        match self {
            Self::Login(_) => Duration::ZERO,
            Self::Reset(_) => Duration::from_millis(100),
        }
    }

    fn expected(self) -> StatusCode {
        match self {
            Self::Login(_) => StatusCode::BAD_REQUEST,
            Self::Reset(_) => StatusCode::ACCEPTED,
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// An app with throttling off (this is about timing, and it makes many failed logins and reset
/// requests) and email on, with ann@example.com active and dis@example.com disabled.
async fn app_with_accounts(backend: Backend) -> TestApp {
    let mut args = vec![
        "--login-max-failures-per-username",
        "0",
        "--login-max-failures-per-address",
        "0",
        "--mail-requests-per-address",
        "0",
        "--mail-requests-per-email",
        "0",
        // Each mail is tried once: the sending is not what is measured.
        "--mail-max-attempts",
        "1",
    ];
    args.extend(warden_app::testing::UNREACHABLE_MAIL);
    let app = TestApp::on(Arc::new(TestDb::new(backend).await), &args);
    app.user("ann@example.com").await;
    let dis = app.user("dis@example.com").await;
    // An admin disables dis@example.com, as an operator would.
    let admin = app.admin("root@example.com").await;
    app.call(
        Method::PATCH,
        &format!("/admin/users/{}", dis.id),
        &admin.bearer,
        Some(json!({"is_active": false})),
    )
    .await
    .assert_status_is_ok();
    app
}

async fn refusals_take_the_same_time(backend: Backend) {
    let app = app_with_accounts(backend).await;
    let cases = [
        (
            "unknown email",
            Probe::Login("username=nobody%40example.com&password=correct+horse"),
        ),
        (
            "wrong password",
            Probe::Login("username=ann%40example.com&password=wrong+horse"),
        ),
        (
            "disabled account",
            Probe::Login("username=dis%40example.com&password=correct+horse"),
        ),
    ];
    take_the_same_time(&app, backend, &cases, MAX_LOGIN_DIFFERENCE).await;
}

async fn reset_requests_take_the_same_time(backend: Backend) {
    let app = app_with_accounts(backend).await;
    let cases = [
        ("unknown email", Probe::Reset("nobody@example.com")),
        ("active account", Probe::Reset("ann@example.com")),
        ("disabled account", Probe::Reset("dis@example.com")),
    ];
    take_the_same_time(&app, backend, &cases, MAX_RESET_DIFFERENCE).await;
}

async fn take_the_same_time(
    app: &TestApp,
    backend: Backend,
    cases: &[(&str, Probe)],
    max_difference: f64,
) {
    let mut reports = Vec::new();
    for _ in 0..ATTEMPTS {
        let medians = measure(app, cases).await;
        let fastest = medians.iter().min().unwrap().as_secs_f64();
        let slowest = medians.iter().max().unwrap().as_secs_f64();
        let report: Vec<String> = cases
            .iter()
            .zip(&medians)
            .map(|((name, _), median)| format!("{name}: {median:?}"))
            .collect();
        eprintln!(
            "{backend:?} medians over {ROUNDS} tries: {}",
            report.join(", ")
        );
        if slowest / fastest - 1.0 <= max_difference {
            return;
        }
        reports.push(report.join(", "));
    }
    panic!(
        "answer times differ by more than {:.0} % in every measurement:\n{}",
        max_difference * 100.0,
        reports.join("\n")
    );
}

/// The median time to refuse each case, over interleaved rounds.
async fn measure(app: &TestApp, cases: &[(&str, Probe)]) -> Vec<Duration> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS + 1 {
        // A different order each round, so that no case always follows the same one.
        for offset in 0..cases.len() {
            let case = (round + offset) % cases.len();
            let probe = cases[case].1;
            tokio::time::sleep(probe.settle()).await;
            let started = Instant::now();
            let response = probe.send(app).await;
            let took = started.elapsed();
            response.assert_status(probe.expected());
            // The first round warms caches and connections up, and is not counted.
            if round > 0 {
                times[case].push(took);
            }
        }
    }
    times.into_iter().map(median).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refusals_take_the_same_time_on_sqlite() {
    refusals_take_the_same_time(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refusals_take_the_same_time_on_postgres() {
    refusals_take_the_same_time(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_take_the_same_time_on_sqlite() {
    reset_requests_take_the_same_time(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_requests_take_the_same_time_on_postgres() {
    reset_requests_take_the_same_time(Backend::Postgres).await;
}
