use mockall::predicate::eq;

use super::*;
use crate::{
    accounts::{EmailAddress, MockUserRepository, PasswordHash, User, UserCredentials},
    crypto::{MockPasswordHasher, MockTotpCodec},
    events::RequestOrigin,
    mfa::{MockMfaRepository, RecoveryCodeHash, RecoveryCodes, SealedTotpSecret, TotpSecret},
    scope::Scopes,
    sessions::SessionId,
};

const CODE: &str = "123456";
const STEP: i64 = 58_000_000;

fn ann() -> User {
    User {
        id: UserId::new(1),
        email: EmailAddress::new("ann@example.com").unwrap(),
        created_at: Utc::now(),
        is_active: true,
        is_admin: false,
        email_verified: false,
    }
}

fn caller() -> Principal {
    Principal {
        user: ann(),
        credential: crate::sessions::Credential::Session(SessionId::random()),
        scopes: Scopes::parse("profile").unwrap(),
        origin: RequestOrigin::new(Some("192.0.2.1".parse().unwrap()), Some("phone")),
    }
}

fn password() -> Password {
    Password::candidate("correct horse".into()).unwrap()
}

fn factor(confirmed: bool) -> TotpFactor {
    TotpFactor {
        user_id: UserId::new(1),
        secret: SealedTotpSecret::new("sealed".into()),
        confirmed_at: confirmed.then(Utc::now),
        last_used_step: None,
    }
}

struct Mocks {
    users: MockUserRepository,
    hasher: MockPasswordHasher,
    mfa: MockMfaRepository,
    codec: MockTotpCodec,
}

impl Mocks {
    /// The password check answers `matches`; the only valid code is [`CODE`].
    fn new(matches: bool) -> Self {
        let mut users = MockUserRepository::new();
        users.expect_find_credentials_by_id().returning(|_| {
            Ok(Some(UserCredentials {
                user: ann(),
                password_hash: PasswordHash::new("$argon2id$ann".into()),
            }))
        });
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify_password()
            .returning(move |_, _| Ok(matches));
        let mut codec = MockTotpCodec::new();
        codec
            .expect_open()
            .returning(|_| Ok(TotpSecret::new(vec![7; 20])));
        codec
            .expect_matching_step()
            .returning(|_, code, _| (code == CODE).then_some(STEP));
        codec
            .expect_generate_recovery_codes()
            .returning(|| RecoveryCodes {
                codes: vec!["aaaa-bbbb-cccc-dddd".into()],
                hashes: vec![RecoveryCodeHash::new("hash-of-aaaa".into())],
            });
        codec
            .expect_hash_recovery_code()
            .returning(|code| RecoveryCodeHash::new(format!("hash-of-{code}")));
        Self {
            users,
            hasher,
            mfa: MockMfaRepository::new(),
            codec,
        }
    }

    fn with_factor(mut self, confirmed: bool) -> Self {
        self.mfa
            .expect_find_totp()
            .returning(move |_| Ok(Some(factor(confirmed))));
        self
    }

    fn service(self) -> MfaService {
        MfaService::new(MfaPorts {
            users: Arc::new(self.users),
            hasher: Arc::new(self.hasher),
            mfa: Arc::new(self.mfa),
            codec: Arc::new(self.codec),
        })
    }
}

#[tokio::test]
async fn enrolling_needs_the_password_and_no_enabled_factor() {
    let mut wrong = Mocks::new(false);
    wrong.mfa.expect_save_pending_totp().never();
    let err = wrong
        .service()
        .start_totp(&caller(), &password())
        .await
        .unwrap_err();
    assert!(matches!(err, StartTotpError::IncorrectPassword), "{err:?}");

    let mut enabled = Mocks::new(true);
    enabled
        .codec
        .expect_generate_secret()
        .returning(|| TotpSecret::new(vec![1; 20]));
    enabled
        .codec
        .expect_seal()
        .returning(|_| Ok(SealedTotpSecret::new("sealed".into())));
    // The store refuses to replace a confirmed factor.
    enabled
        .mfa
        .expect_save_pending_totp()
        .returning(|_, _, _| Ok(false));
    let err = enabled
        .service()
        .start_totp(&caller(), &password())
        .await
        .unwrap_err();
    assert!(matches!(err, StartTotpError::AlreadyEnabled), "{err:?}");
}

#[tokio::test]
async fn a_current_code_confirms_the_pending_factor_and_hands_out_recovery_codes() {
    let mut mocks = Mocks::new(true).with_factor(false);
    mocks
        .mfa
        .expect_confirm_totp()
        .withf(|user, step, recovery, _, events| {
            *user == UserId::new(1)
                && *step == STEP
                && recovery == [RecoveryCodeHash::new("hash-of-aaaa".into())]
                && matches!(events, [event] if event.kind == SecurityEventKind::MfaEnabled)
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));

    let codes = mocks.service().confirm_totp(&caller(), CODE).await.unwrap();

    assert_eq!(codes, ["aaaa-bbbb-cccc-dddd"]);
}

#[tokio::test]
async fn a_wrong_code_or_nothing_pending_confirms_nothing() {
    let mut wrong = Mocks::new(true).with_factor(false);
    wrong.mfa.expect_confirm_totp().never();
    let err = wrong
        .service()
        .confirm_totp(&caller(), "000000")
        .await
        .unwrap_err();
    assert!(matches!(err, ConfirmTotpError::InvalidCode), "{err:?}");

    let confirmed = Mocks::new(true).with_factor(true);
    let err = confirmed
        .service()
        .confirm_totp(&caller(), CODE)
        .await
        .unwrap_err();
    assert!(matches!(err, ConfirmTotpError::NothingPending), "{err:?}");
}

#[tokio::test]
async fn a_recovery_code_disables_the_factor_once_and_is_recorded() {
    let mut mocks = Mocks::new(true).with_factor(true);
    mocks
        .mfa
        .expect_use_recovery_code()
        .withf(|user, hash, _, events| {
            *user == UserId::new(1)
                && hash.as_str() == "hash-of-aaaa-bbbb-cccc-dddd"
                && matches!(events, [event] if event.kind == SecurityEventKind::RecoveryCodeUsed
                    && event.context.ip_address == Some("192.0.2.1".parse().unwrap()))
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));
    mocks
        .mfa
        .expect_remove_totp()
        .withf(|user, events| {
            *user == UserId::new(1)
                && matches!(events, [event] if event.kind == SecurityEventKind::MfaDisabled)
        })
        .times(1)
        .returning(|_, _| Ok(true));

    mocks
        .service()
        .disable_totp(&caller(), &password(), " aaaa-bbbb-cccc-dddd ")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_spent_code_changes_nothing() {
    let mut mocks = Mocks::new(true).with_factor(true);
    // The step was used already (a replay), and the recovery code was spent.
    mocks
        .mfa
        .expect_use_totp_step()
        .with(eq(UserId::new(1)), eq(STEP))
        .returning(|_, _| Ok(false));
    mocks
        .mfa
        .expect_use_recovery_code()
        .returning(|_, _, _, _| Ok(false));
    mocks.mfa.expect_remove_totp().never();
    mocks.mfa.expect_replace_recovery_codes().never();
    let service = mocks.service();

    for code in [CODE, "aaaa-bbbb-cccc-dddd"] {
        let err = service
            .disable_totp(&caller(), &password(), code)
            .await
            .unwrap_err();
        assert!(matches!(err, ChangeMfaError::InvalidCode), "{err:?}");
        let err = service
            .renew_recovery_codes(&caller(), &password(), code)
            .await
            .unwrap_err();
        assert!(matches!(err, ChangeMfaError::InvalidCode), "{err:?}");
    }
}

#[tokio::test]
async fn the_password_is_checked_before_the_code_is_spent() {
    let mut mocks = Mocks::new(false);
    mocks.mfa.expect_find_totp().never();
    mocks.mfa.expect_use_totp_step().never();

    let err = mocks
        .service()
        .disable_totp(&caller(), &password(), CODE)
        .await
        .unwrap_err();

    assert!(matches!(err, ChangeMfaError::IncorrectPassword), "{err:?}");
}

#[tokio::test]
async fn an_admin_resets_an_existing_users_factor_without_their_own_context() {
    let mut mocks = Mocks::new(true);
    mocks
        .users
        .expect_find_user()
        .returning(|id| Ok((id == UserId::new(1)).then(ann)));
    mocks
        .mfa
        .expect_remove_totp()
        .withf(|user, events| {
            *user == UserId::new(1)
                && matches!(events, [event] if event.kind == SecurityEventKind::MfaDisabled
                    && event.context == EventContext::default())
        })
        .times(1)
        .returning(|_, _| Ok(true));
    let service = mocks.service();

    service.reset(&admin(), UserId::new(1)).await.unwrap();
    let err = service.reset(&admin(), UserId::new(9)).await.unwrap_err();
    assert!(
        matches!(err, ResetMfaError::NotFound(id) if id == UserId::new(9)),
        "{err:?}"
    );
}

/// An admin, with id 2.
fn admin() -> Principal {
    let mut user = ann();
    user.id = UserId::new(2);
    user.is_admin = true;
    Principal {
        user,
        scopes: Scopes::allowed_for(true),
        ..caller()
    }
}

#[tokio::test]
async fn an_admin_cannot_reset_their_own_factor() {
    let mut mocks = Mocks::new(true);
    mocks.mfa.expect_remove_totp().never();
    let service = mocks.service();

    let err = service.reset(&admin(), UserId::new(2)).await.unwrap_err();

    assert!(matches!(err, ResetMfaError::OwnAccount), "{err:?}");
}
