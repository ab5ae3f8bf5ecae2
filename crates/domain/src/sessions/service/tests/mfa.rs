//! Logins of an account with a second factor (contract section 10): the `mfa_required` answer,
//! the one-step `otp` field, and the `mfa-otp` grant.

use secrecy::ExposeSecret;

use super::*;
use crate::mfa::{MfaChallenge, SealedTotpSecret, TotpFactor, TotpSecret};

const CODE: &str = "123456";
const STEP: i64 = 58_000_000;

fn factor() -> TotpFactor {
    TotpFactor {
        user_id: UserId::new(1),
        secret: SealedTotpSecret::new("sealed".into()),
        confirmed_at: Some(Utc::now()),
        last_used_step: None,
    }
}

impl Mocks {
    /// Ann has a confirmed TOTP factor whose only valid code is [`CODE`], of step [`STEP`];
    /// that step is still unused if `unused`.
    fn with_second_factor(mut self, unused: bool) -> Self {
        self.mfa
            .expect_find_totp()
            .returning(|_| Ok(Some(factor())));
        self.totp
            .expect_open()
            .returning(|_| Ok(TotpSecret::new(vec![7; 20])));
        self.totp
            .expect_matching_step()
            .returning(|_, code, _| (code == CODE).then_some(STEP));
        self.mfa
            .expect_use_totp_step()
            .withf(|user, step| *user == UserId::new(1) && *step == STEP)
            .returning(move |_, _| Ok(unused));
        self
    }

    /// A wrong second factor is recorded as a refused login.
    fn recording_a_failure(mut self) -> Self {
        self.events
            .expect_record_events()
            .withf(|events| {
                matches!(events, [event] if event.kind == SecurityEventKind::LoginFailed
                    && event.user_id == UserId::new(1))
            })
            .times(1)
            .returning(|_| Ok(()));
        self
    }

    /// A challenge for Ann stored under the hash of `mfa-token`, made by `client`.
    fn with_challenge(mut self, live: bool) -> Self {
        self.mfa
            .expect_find_mfa_challenge()
            .withf(|hash| hash.as_str() == "hash-of-mfa-token")
            .returning(move |hash| {
                let now = Utc::now();
                Ok(Some(MfaChallenge {
                    token_hash: hash.clone(),
                    user_id: UserId::new(1),
                    scopes: Scopes::parse("profile posts:read").unwrap(),
                    client_id: ClientId::new("cli").unwrap(),
                    created_at: now,
                    expires_at: now + MfaChallenge::LIFETIME,
                    failures: if live { 0 } else { 5 },
                    spent_at: None,
                }))
            });
        self.users
            .expect_find_user()
            .returning(|_| Ok(Some(ann(true, false))));
        self
    }
}

fn with_otp(otp: &str) -> PasswordLogin {
    PasswordLogin {
        otp: Some(otp.to_owned().into()),
        ..login(EMAIL, None)
    }
}

fn second_step(otp: &str) -> MfaLogin {
    MfaLogin {
        mfa_token: "mfa-token".to_owned().into(),
        otp: otp.to_owned().into(),
        origin: SessionOrigin::default(),
    }
}

#[tokio::test]
async fn the_right_password_without_a_code_answers_mfa_required_and_opens_no_session() {
    let mut mocks = Mocks::default()
        .with_ann(ann(true, false), true)
        .with_second_factor(true)
        .never_issuing();
    mocks
        .mfa
        .expect_create_mfa_challenge()
        .withf(|challenge| {
            challenge.token_hash.as_str() == "hash-of-next-refresh"
                && challenge.user_id == UserId::new(1)
                && challenge.client_id.as_str() == "test-client"
                && challenge.expires_at - challenge.created_at == MfaChallenge::LIFETIME
                && challenge.failures == 0
        })
        .times(1)
        .returning(|_| Ok(()));

    let err = mocks.service().login(login(EMAIL, None)).await.unwrap_err();

    let LoginError::MfaRequired { mfa_token } = err else {
        panic!("{err:?}")
    };
    assert_eq!(mfa_token.expose_secret(), "next-refresh");
}

#[tokio::test]
async fn a_wrong_password_never_asks_for_a_second_factor() {
    let mut mocks = Mocks::default()
        .with_ann(ann(true, false), false)
        .never_issuing();
    mocks.mfa.expect_find_totp().never();
    mocks.mfa.expect_create_mfa_challenge().never();

    // With a right code even: the password is checked first, and the answer is the usual one.
    let err = mocks.service().login(with_otp(CODE)).await.unwrap_err();
    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn the_password_and_a_current_code_log_in_with_both_methods() {
    let service = Mocks::default()
        .with_ann(ann(true, false), true)
        .with_second_factor(true)
        .issuing()
        .service();

    let grant = service.login(with_otp(CODE)).await.unwrap();

    assert!(
        grant.access_token.ends_with("-pwd otp"),
        "{}",
        grant.access_token
    );
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_counted_as_a_failure() {
    let service = Mocks::default()
        .with_ann(ann(true, false), true)
        .with_second_factor(false)
        .recording_a_failure()
        .never_issuing()
        .service();

    let err = service.login(with_otp(CODE)).await.unwrap_err();

    assert!(
        matches!(&err, LoginError::InvalidSecondFactor { username } if username == EMAIL),
        "{err:?}"
    );
}

impl Mocks {
    /// The token of the challenge has a code left to try (`tries`), or none.
    fn trying(mut self, tries: bool) -> Self {
        self.mfa
            .expect_try_mfa_challenge()
            .withf(|hash, _| hash.as_str() == "hash-of-mfa-token")
            .times(1)
            .returning(move |_, _| Ok(tries));
        self
    }
}

#[tokio::test]
async fn the_second_step_opens_the_session_the_first_asked_for() {
    let mut mocks = Mocks::default()
        .with_challenge(true)
        .with_second_factor(true)
        .trying(true)
        .issuing();
    mocks
        .mfa
        .expect_spend_mfa_challenge()
        .times(1)
        .returning(|_, _| Ok(true));

    let grant = mocks
        .service()
        .login_with_second_factor(second_step(CODE))
        .await
        .unwrap();

    // The first step's client and scopes, and both methods.
    assert_eq!(
        grant.access_token,
        "token-for-1-profile posts:read-cli-pwd otp"
    );
}

#[tokio::test]
async fn a_wrong_code_at_the_second_step_counts_against_the_token() {
    let mut mocks = Mocks::default()
        .with_challenge(true)
        .with_second_factor(true)
        .recording_a_failure()
        .trying(true)
        .never_issuing();
    mocks.mfa.expect_spend_mfa_challenge().never();

    let err = mocks
        .service()
        .login_with_second_factor(second_step("654321"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, LoginError::InvalidSecondFactor { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_spent_by_five_wrong_codes_is_refused_even_with_the_right_one() {
    let mut mocks = Mocks::default().with_challenge(false).never_issuing();
    mocks.mfa.expect_use_totp_step().never();

    let err = mocks
        .service()
        .login_with_second_factor(second_step(CODE))
        .await
        .unwrap_err();

    assert!(matches!(err, LoginError::InvalidMfaToken), "{err:?}");
}

#[tokio::test]
async fn a_code_is_not_checked_when_racing_codes_took_the_tokens_last_try() {
    // Found live, but racing requests counted the fifth try meanwhile.
    let mut mocks = Mocks::default()
        .with_challenge(true)
        .trying(false)
        .never_issuing();
    mocks
        .mfa
        .expect_find_totp()
        .returning(|_| Ok(Some(factor())));
    mocks.totp.expect_matching_step().never();
    mocks.mfa.expect_use_recovery_code().never();
    mocks.mfa.expect_spend_mfa_challenge().never();

    let err = mocks
        .service()
        .login_with_second_factor(second_step(CODE))
        .await
        .unwrap_err();

    assert!(matches!(err, LoginError::InvalidMfaToken), "{err:?}");
}

#[tokio::test]
async fn the_account_of_a_live_token_is_whose_budget_its_codes_spend() {
    let live = Mocks::default().with_challenge(true).service();
    let account = live
        .second_step_account(&"mfa-token".to_owned().into())
        .await
        .unwrap()
        .expect("a live token leads to its account");
    assert_eq!(account.email.as_str(), EMAIL);

    let spent = Mocks::default().with_challenge(false).service();
    assert!(
        spent
            .second_step_account(&"mfa-token".to_owned().into())
            .await
            .unwrap()
            .is_none()
    );
}
