//! Two-factor authentication (contract section 10). Every code is computed by `oathtool`, an
//! implementation independent of Warden's, from the secret Warden hands out.

use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    enrolling_needs_the_password_and_a_code_of_the_app,
    a_second_factor_is_asked_for_only_after_the_right_password,
    a_code_and_a_recovery_code_each_log_in_once,
    five_wrong_codes_spend_the_mfa_token_and_count_as_failed_logins,
    disabling_and_renewing_need_the_password_and_a_second_factor,
    an_admin_resets_a_users_second_factor,
    no_secret_code_or_token_reaches_the_event_log,
    wrong_codes_at_disable_count_against_the_accounts_budget,
);

const MFA_GRANT: &str = "urn%3Awarden%3Aparams%3Aoauth%3Agrant-type%3Amfa-otp";

/// The TOTP code of base32 `secret` at `offset` seconds from now, by `oathtool`.
fn oathtool(secret: &str, offset: i64) -> String {
    let at = chrono::Utc::now().timestamp() + offset;
    let output = std::process::Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("@{at}"), secret])
        .output()
        .expect("oathtool is not installed: `apt-get install oathtool` (.ci/run does)");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An account with TOTP enabled: its base32 secret and recovery codes. The confirming code is
/// the current one, so the next code a test may use is that of 30 seconds on.
struct Enrolled {
    user: TestUser,
    secret: String,
    recovery_codes: Vec<String>,
}

async fn post(app: &TestApp, path: &str, user: &TestUser, body: Value) -> poem::test::TestResponse {
    app.call(Method::POST, path, &user.bearer, Some(body)).await
}

async fn start(app: &TestApp, user: &TestUser) -> String {
    let response = post(
        app,
        "/users/me/mfa/totp",
        user,
        json!({"password": PASSWORD}),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    json_of(response).await["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn enrolled(app: &TestApp, email: &str) -> Enrolled {
    let user = app.user(email).await;
    let secret = start(app, &user).await;
    let response = post(
        app,
        "/users/me/mfa/totp/confirm",
        &user,
        json!({"code": oathtool(&secret, 0)}),
    )
    .await;
    response.assert_status_is_ok();
    let body = json_of(response).await;
    let recovery_codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        user,
        secret,
        recovery_codes,
    }
}

async fn mfa_enabled(app: &TestApp, user: &TestUser) -> Value {
    let response = app.get_with("/users/me", &user.bearer).await;
    response.assert_status_is_ok();
    json_of(response).await["mfa_enabled"].clone()
}

/// A password login of `email` with `extra` form fields.
async fn password_login(
    app: &TestApp,
    email: &str,
    password: &str,
    extra: &str,
) -> poem::test::TestResponse {
    app.login_form(&format!(
        "username={}&password={}{extra}",
        urlencode(email),
        urlencode(password)
    ))
    .await
}

/// The `mfa_token` of a password login that needs a second factor.
async fn mfa_token(app: &TestApp, email: &str, extra: &str) -> String {
    let body = assert_oauth_error(
        password_login(app, email, PASSWORD, extra).await,
        "mfa_required",
    )
    .await;
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, token: &str, otp: &str) -> poem::test::TestResponse {
    app.login_form(&format!(
        "grant_type={MFA_GRANT}&mfa_token={}&otp={}",
        urlencode(token),
        urlencode(otp)
    ))
    .await
}

async fn my_event_types(app: &TestApp, user: &TestUser) -> Vec<String> {
    let events = json_of(app.get_with("/users/me/events", &user.bearer).await).await;
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn enrolling_needs_the_password_and_a_code_of_the_app(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    assert_eq!(mfa_enabled(&app, &ann).await, false);
    let wrong = post(
        &app,
        "/users/me/mfa/totp",
        &ann,
        json!({"password": "not mine"}),
    )
    .await;
    assert_detail(wrong, StatusCode::BAD_REQUEST, "Incorrect password").await;
    let nothing = post(
        &app,
        "/users/me/mfa/totp/confirm",
        &ann,
        json!({"code": "123456"}),
    )
    .await;
    nothing.assert_status(StatusCode::CONFLICT);

    let response = post(
        &app,
        "/users/me/mfa/totp",
        &ann,
        json!({"password": PASSWORD}),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    let first = json_of(response).await;
    let uri = first["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Warden:ann%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains("issuer=Warden"), "{uri}");
    assert!(
        uri.contains(&format!("secret={}", first["secret"].as_str().unwrap())),
        "{uri}"
    );
    assert!(first["qr_svg"].as_str().unwrap().contains("<svg"));
    // Starting again replaces the pending secret: the first one's codes no longer confirm.
    let secret = start(&app, &ann).await;
    assert_ne!(secret, first["secret"]);
    let stale = oathtool(first["secret"].as_str().unwrap(), 0);
    if stale != oathtool(&secret, 0) {
        let response = post(
            &app,
            "/users/me/mfa/totp/confirm",
            &ann,
            json!({"code": stale}),
        )
        .await;
        assert_detail(response, StatusCode::BAD_REQUEST, "invalid code").await;
    }
    assert_eq!(
        mfa_enabled(&app, &ann).await,
        false,
        "pending is not enabled"
    );

    let response = post(
        &app,
        "/users/me/mfa/totp/confirm",
        &ann,
        json!({"code": oathtool(&secret, 0)}),
    )
    .await;
    response.assert_status_is_ok();
    let codes = json_of(response).await["recovery_codes"].clone();
    assert_eq!(codes.as_array().unwrap().len(), 10, "{codes}");
    assert_eq!(mfa_enabled(&app, &ann).await, true);
    let again = post(
        &app,
        "/users/me/mfa/totp",
        &ann,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_detail(
        again,
        StatusCode::CONFLICT,
        "two-factor authentication is already enabled",
    )
    .await;
    let confirm_again = post(
        &app,
        "/users/me/mfa/totp/confirm",
        &ann,
        json!({"code": oathtool(&secret, 30)}),
    )
    .await;
    confirm_again.assert_status(StatusCode::CONFLICT);
    assert_eq!(my_event_types(&app, &ann).await[0], "mfa_enabled");
}

async fn a_second_factor_is_asked_for_only_after_the_right_password(app: TestApp) {
    let ann = enrolled(&app, "ann@example.com").await;
    let sessions = || async {
        json_of(app.get_with("/users/me/sessions", &ann.user.bearer).await)
            .await
            .as_array()
            .unwrap()
            .len()
    };
    let before = sessions().await;
    let token = mfa_token(&app, "ann@example.com", "&client_id=cli").await;
    assert!(token.len() >= 43, "{token}");
    assert_eq!(
        sessions().await,
        before,
        "no session before the second step"
    );

    // A wrong password is the usual answer, with or without a right code.
    let code = oathtool(&ann.secret, 30);
    for extra in [String::new(), format!("&otp={code}")] {
        let body = assert_oauth_error(
            password_login(&app, "ann@example.com", "not her password", &extra).await,
            "invalid_grant",
        )
        .await;
        assert!(body.get("mfa_token").is_none(), "{body}");
        assert_eq!(body["error_description"], "incorrect username or password");
    }

    let response = second_step(&app, &token, &code).await;
    response.assert_status_is_ok();
    let grant = json_of(response).await;
    let claims = claims_of(grant["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["client_id"], "cli");
    assert_eq!(sessions().await, before + 1);
    // The token and the code were spent.
    assert_oauth_error(
        second_step(&app, &token, &oathtool(&ann.secret, 30)).await,
        "invalid_grant",
    )
    .await;
    let token = mfa_token(&app, "ann@example.com", "").await;
    assert_oauth_error(second_step(&app, &token, &code).await, "invalid_grant").await;
    // Garbage tokens and missing fields.
    assert_oauth_error(
        second_step(&app, "not-a-token", &code).await,
        "invalid_grant",
    )
    .await;
    let missing = app
        .login_form(&format!(
            "grant_type={MFA_GRANT}&mfa_token={}",
            urlencode(&token)
        ))
        .await;
    assert_oauth_error(missing, "invalid_request").await;
}

async fn a_code_and_a_recovery_code_each_log_in_once(app: TestApp) {
    let ann = enrolled(&app, "ann@example.com").await;
    let code = oathtool(&ann.secret, 30);
    let response = password_login(&app, "ann@example.com", PASSWORD, &format!("&otp={code}")).await;
    response.assert_status_is_ok();
    let claims = claims_of(json_of(response).await["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    // A replayed code is refused.
    let replay = password_login(&app, "ann@example.com", PASSWORD, &format!("&otp={code}")).await;
    let body = assert_oauth_error(replay, "invalid_grant").await;
    assert_eq!(body["error_description"], "the second factor is invalid");

    let recovery = &ann.recovery_codes[0];
    let otp = format!("&otp={}", urlencode(recovery));
    password_login(&app, "ann@example.com", PASSWORD, &otp)
        .await
        .assert_status_is_ok();
    // A spent recovery code is refused, at either step.
    assert_oauth_error(
        password_login(&app, "ann@example.com", PASSWORD, &otp).await,
        "invalid_grant",
    )
    .await;
    let token = mfa_token(&app, "ann@example.com", "").await;
    assert_oauth_error(second_step(&app, &token, recovery).await, "invalid_grant").await;
    // Another recovery code, typed in capitals, finishes the two-step login.
    let other = ann.recovery_codes[1].to_uppercase();
    second_step(&app, &token, &other)
        .await
        .assert_status_is_ok();

    let types = my_event_types(&app, &ann.user).await;
    assert_eq!(
        types[..7],
        [
            "login",
            "recovery_code_used",
            "login_failed",
            "login_failed",
            "login",
            "recovery_code_used",
            "login_failed",
        ],
        "{types:?}"
    );
}

async fn five_wrong_codes_spend_the_mfa_token_and_count_as_failed_logins(app: TestApp) {
    let ann = enrolled(&app, "ann@example.com").await;
    let token = mfa_token(&app, "ann@example.com", "").await;
    let right = oathtool(&ann.secret, 30);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        assert_oauth_error(second_step(&app, &token, wrong).await, "invalid_grant").await;
    }
    // Spent by the failures: even the right code no longer finishes it.
    assert_oauth_error(second_step(&app, &token, &right).await, "invalid_grant").await;
    // Five failures spent the username's budget (LOGIN_MAX_FAILURES_PER_USERNAME = 5).
    let throttled = password_login(&app, "ann@example.com", PASSWORD, "").await;
    throttled.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&throttled, "retry-after").is_some());
}

async fn disabling_and_renewing_need_the_password_and_a_second_factor(app: TestApp) {
    let ann = enrolled(&app, "ann@example.com").await;
    let user = &ann.user;
    let renew = |password: &str, code: &str| json!({"password": password, "code": code});
    let wrong = post(
        &app,
        "/users/me/mfa/recovery-codes",
        user,
        renew("not mine", &ann.recovery_codes[0]),
    )
    .await;
    assert_detail(wrong, StatusCode::BAD_REQUEST, "Incorrect password").await;
    let bad_code = post(
        &app,
        "/users/me/mfa/recovery-codes",
        user,
        renew(PASSWORD, "000000x"),
    )
    .await;
    assert_detail(bad_code, StatusCode::BAD_REQUEST, "invalid code").await;

    let response = post(
        &app,
        "/users/me/mfa/recovery-codes",
        user,
        renew(PASSWORD, &ann.recovery_codes[0]),
    )
    .await;
    response.assert_status_is_ok();
    let renewed: Vec<String> = json_of(response).await["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(renewed.len(), 10);
    // The old set no longer works.
    let old = post(
        &app,
        "/users/me/mfa/totp/disable",
        user,
        renew(PASSWORD, &ann.recovery_codes[1]),
    )
    .await;
    assert_detail(old, StatusCode::BAD_REQUEST, "invalid code").await;

    let disabled = post(
        &app,
        "/users/me/mfa/totp/disable",
        user,
        renew(PASSWORD, &oathtool(&ann.secret, 30)),
    )
    .await;
    disabled.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(mfa_enabled(&app, user).await, false);
    password_login(&app, "ann@example.com", PASSWORD, "")
        .await
        .assert_status_is_ok();
    let again = post(
        &app,
        "/users/me/mfa/totp/disable",
        user,
        renew(PASSWORD, &renewed[0]),
    )
    .await;
    assert_detail(
        again,
        StatusCode::CONFLICT,
        "two-factor authentication is not enabled",
    )
    .await;
    assert!(
        my_event_types(&app, user)
            .await
            .contains(&"mfa_disabled".to_owned())
    );
}

async fn an_admin_resets_a_users_second_factor(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = enrolled(&app, "ann@example.com").await;
    let path = format!("/admin/users/{}/mfa/reset", ann.user.id);
    let by_ann = app.call(Method::POST, &path, &ann.user.bearer, None).await;
    assert_detail(by_ann, StatusCode::FORBIDDEN, "Not enough permissions").await;

    app.call(Method::POST, &path, &admin.bearer, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(mfa_enabled(&app, &ann.user).await, false);
    let response = password_login(&app, "ann@example.com", PASSWORD, "").await;
    response.assert_status_is_ok();
    let claims = claims_of(json_of(response).await["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(my_event_types(&app, &ann.user).await[1], "mfa_disabled");

    let missing = app
        .call(
            Method::POST,
            "/admin/users/987654/mfa/reset",
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

async fn no_secret_code_or_token_reaches_the_event_log(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let ann = enrolled(&app, "ann@example.com").await;
    let code = oathtool(&ann.secret, 30);
    let token = mfa_token(&app, "ann@example.com", "").await;
    assert_oauth_error(second_step(&app, &token, "999999").await, "invalid_grant").await;
    let response = second_step(&app, &token, &code).await;
    response.assert_status_is_ok();
    let grant = json_of(response).await;
    password_login(
        &app,
        "ann@example.com",
        PASSWORD,
        &format!("&otp={}", ann.recovery_codes[0]),
    )
    .await
    .assert_status_is_ok();

    let everything = json_of(app.get_with("/admin/events?limit=200", &admin.bearer).await)
        .await
        .to_string();
    assert!(everything.contains("recovery_code_used"), "{everything}");
    let mut secrets = vec![
        PASSWORD.to_owned(),
        ann.secret.clone(),
        code,
        token,
        grant["access_token"].as_str().unwrap().to_owned(),
        grant["refresh_token"].as_str().unwrap().to_owned(),
    ];
    secrets.extend(ann.recovery_codes.iter().cloned());
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "an event holds {secret}"
        );
    }
}

/// A 6-digit code that is none of those `secret` accepts now.
fn wrong_code(secret: &str) -> String {
    let valid = [-30, 0, 30, 60].map(|offset| oathtool(secret, offset));
    ["000000", "111111", "222222", "333333", "444444"]
        .into_iter()
        .find(|code| !valid.iter().any(|valid| valid == code))
        .unwrap()
        .to_owned()
}

async fn wrong_codes_at_disable_count_against_the_accounts_budget(app: TestApp) {
    // The default budget: 5 failures per username over 300 s.
    let ann = enrolled(&app, "ann@example.com").await;
    let wrong = wrong_code(&ann.secret);
    let disable = |code: String| {
        post(
            &app,
            "/users/me/mfa/totp/disable",
            &ann.user,
            json!({"password": PASSWORD, "code": code}),
        )
    };
    for _ in 0..5 {
        assert_detail(
            disable(wrong.clone()).await,
            StatusCode::BAD_REQUEST,
            "invalid code",
        )
        .await;
    }
    let refused = disable(wrong.clone()).await;
    assert!(header(&refused, "retry-after").is_some());
    assert_detail(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts; try again later",
    )
    .await;
    // The right code waits too, and nothing was disabled.
    disable(oathtool(&ann.secret, 30))
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(mfa_enabled(&app, &ann.user).await, true);
}

/// Guessing codes at the `mfa-otp` grant, with the client address taken from
/// `X-Forwarded-For` so that each guess may come from another one.
mod throttled {
    use std::sync::Arc;

    use warden_adapters::Backend;
    use warden_adapters::testing::TestDb;

    use super::*;

    warden_adapters::on_both_databases!(
        #[tokio::test(flavor = "multi_thread")]
        warden_adapters::testing::with_backend =>
        codes_from_many_addresses_spend_the_accounts_budget,
        racing_codes_on_one_mfa_token_are_checked_at_most_five_times,
    );

    async fn second_step_from(
        app: &TestApp,
        address: &str,
        token: &str,
        otp: &str,
    ) -> poem::test::TestResponse {
        app.client
            .post("/login")
            .header("x-forwarded-for", address)
            .content_type("application/x-www-form-urlencoded")
            .body(format!(
                "grant_type={MFA_GRANT}&mfa_token={}&otp={}",
                urlencode(token),
                urlencode(otp)
            ))
            .send()
            .await
    }

    async fn codes_from_many_addresses_spend_the_accounts_budget(backend: Backend) {
        let app = TestApp::on(
            Arc::new(TestDb::new(backend).await),
            &[
                "--login-max-failures-per-username",
                "3",
                "--trusted-proxy-hops",
                "1",
            ],
        );
        let ann = enrolled(&app, "ann@example.com").await;
        let token = mfa_token(&app, "ann@example.com", "").await;
        let wrong = wrong_code(&ann.secret);
        for i in 1..=3 {
            let body = assert_oauth_error(
                second_step_from(&app, &format!("203.0.113.{i}"), &token, &wrong).await,
                "invalid_grant",
            )
            .await;
            assert_eq!(body["error_description"], "the second factor is invalid");
        }
        // The token has two tries left, and each address nineteen: the account has none.
        for i in 4..=10 {
            let refused = second_step_from(&app, &format!("203.0.113.{i}"), &token, &wrong).await;
            refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
            assert!(header(&refused, "retry-after").is_some());
        }
        second_step_from(&app, "198.51.100.7", &token, &oathtool(&ann.secret, 30))
            .await
            .assert_status(StatusCode::TOO_MANY_REQUESTS);
    }

    async fn racing_codes_on_one_mfa_token_are_checked_at_most_five_times(backend: Backend) {
        let app = TestApp::on(
            Arc::new(TestDb::new(backend).await),
            &[
                "--login-max-failures-per-username",
                "0",
                "--login-max-failures-per-address",
                "0",
            ],
        );
        let ann = enrolled(&app, "ann@example.com").await;
        let token = mfa_token(&app, "ann@example.com", "").await;
        let wrong = wrong_code(&ann.secret);
        let answers = futures_util::future::join_all(
            (0..20).map(|_| second_step_from(&app, "", &token, &wrong)),
        )
        .await;
        let mut checked = 0;
        for response in answers {
            let body = assert_oauth_error(response, "invalid_grant").await;
            match body["error_description"].as_str().unwrap() {
                "the second factor is invalid" => checked += 1,
                "the mfa_token is invalid, expired or spent" => {}
                other => panic!("{other}"),
            }
        }
        assert_eq!(checked, 5, "20 racing codes on one mfa_token");
        // Spent: the right code no longer finishes it.
        assert_oauth_error(
            second_step_from(&app, "", &token, &oathtool(&ann.secret, 30)).await,
            "invalid_grant",
        )
        .await;
    }
}
