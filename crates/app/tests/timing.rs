//! Enumeration through timing: unknown email, wrong password and disabled account must take
//! the same time to refuse (the unknown email is checked against a dummy hash of the same
//! cost). A benchmark-style check: many interleaved tries of each, and the medians may differ
//! by at most 5 %. It runs alone (see `.config/nextest.toml`), but the machine may still be
//! busy with something else: a measurement over the bound is repeated, up to three in all, and
//! the check fails only if every one is over. A real difference (without the dummy hash the
//! unknown email answers 30 times faster) shows in every measurement; passing load does not.

use std::time::{Duration, Instant};

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use serde_json::json;
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;
use warden_app::testing::TestApp;

const ROUNDS: usize = 41;
const ATTEMPTS: usize = 3;
const MAX_DIFFERENCE: f64 = 0.05;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn refusals_take_the_same_time(backend: Backend) {
    // Throttling off: this is about timing, and it makes many failed logins.
    let app = TestApp::on(
        Arc::new(TestDb::new(backend).await),
        &[
            "--login-max-failures-per-username",
            "0",
            "--login-max-failures-per-address",
            "0",
        ],
    );
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

    let cases = [
        (
            "unknown email",
            "username=nobody%40example.com&password=correct+horse",
        ),
        (
            "wrong password",
            "username=ann%40example.com&password=wrong+horse",
        ),
        (
            "disabled account",
            "username=dis%40example.com&password=correct+horse",
        ),
    ];
    let mut reports = Vec::new();
    for _ in 0..ATTEMPTS {
        let medians = measure(&app, &cases).await;
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
        if slowest / fastest - 1.0 <= MAX_DIFFERENCE {
            return;
        }
        reports.push(report.join(", "));
    }
    panic!(
        "refusal times differ by more than 5 % in every measurement:\n{}",
        reports.join("\n")
    );
}

/// The median time to refuse each case, over interleaved rounds.
async fn measure(app: &TestApp, cases: &[(&str, &'static str)]) -> Vec<Duration> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS + 1 {
        // A different order each round, so that no case always follows the same one.
        for offset in 0..cases.len() {
            let case = (round + offset) % cases.len();
            let started = Instant::now();
            let response = app.login_form(cases[case].1).await;
            let took = started.elapsed();
            response.assert_status(StatusCode::BAD_REQUEST);
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
