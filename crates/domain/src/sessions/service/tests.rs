use std::time::Duration;

use mockall::predicate::eq;

use super::*;
use crate::{
    accounts::{EmailAddress, MockUserRepository, Password, PasswordHash, UserCredentials, UserId},
    crypto::{
        AccessClaims, InvalidTokenError, IssuedToken, MockPasswordHasher, MockSecretCodec,
        MockTokenIssuer, MockTokenVerifier, MockTotpCodec, SecretHash,
    },
    events::MockSecurityEventRepository,
    mfa::MockMfaRepository,
    personal_tokens::MockPersonalTokenRepository,
    scope::{Scope, UnknownScopeError},
    sessions::{AuthMethods, ClientId, MockSessionRepository, SessionOrigin},
};

const EMAIL: &str = "ann@example.com";
const HASH: &str = "$argon2id$ann";

fn ann(is_active: bool, is_admin: bool) -> User {
    User {
        id: UserId::new(1),
        email: EmailAddress::new(EMAIL).unwrap(),
        created_at: Utc::now(),
        is_active,
        is_admin,
        email_verified: false,
    }
}

fn session_of(user_id: UserId, revoked: bool, scopes: &str) -> Session {
    let now = Utc::now();
    Session {
        id: SessionId::random(),
        user_id,
        created_at: now,
        expires_at: now + TimeDelta::hours(1),
        revoked_at: revoked.then_some(now),
        scopes: Scopes::parse(scopes).unwrap(),
        last_used_at: now,
        origin: SessionOrigin::default(),
    }
}

/// The mocks of one test, with nothing expected of them yet but a refresh-token codec that
/// hands out `refresh-N` with hash `hash-of-refresh-N`.
struct Mocks {
    users: MockUserRepository,
    sessions: MockSessionRepository,
    hasher: MockPasswordHasher,
    issuer: MockTokenIssuer,
    verifier: MockTokenVerifier,
    codec: MockSecretCodec,
    events: MockSecurityEventRepository,
    mfa: MockMfaRepository,
    totp: MockTotpCodec,
    personal_tokens: MockPersonalTokenRepository,
}

impl Default for Mocks {
    fn default() -> Self {
        let mut codec = MockSecretCodec::new();
        codec.expect_generate().returning(|| {
            (
                "next-refresh".to_owned(),
                SecretHash::new("hash-of-next-refresh".into()),
            )
        });
        codec
            .expect_hash()
            .returning(|presented| SecretHash::new(format!("hash-of-{presented}")));
        Self {
            users: MockUserRepository::new(),
            sessions: MockSessionRepository::new(),
            hasher: MockPasswordHasher::new(),
            issuer: MockTokenIssuer::new(),
            verifier: MockTokenVerifier::new(),
            codec,
            events: MockSecurityEventRepository::new(),
            mfa: MockMfaRepository::new(),
            totp: MockTotpCodec::new(),
            personal_tokens: MockPersonalTokenRepository::new(),
        }
    }
}

impl Mocks {
    fn service(self) -> AuthService {
        AuthService::new(
            AuthPorts {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                hasher: Arc::new(self.hasher),
                issuer: Arc::new(self.issuer),
                verifier: Arc::new(self.verifier),
                secrets: Arc::new(self.codec),
                events: Arc::new(self.events),
                mfa: Arc::new(self.mfa),
                totp: Arc::new(self.totp),
                personal_tokens: Arc::new(self.personal_tokens),
            },
            Lifetimes {
                session: TimeDelta::days(30),
                refresh_token: TimeDelta::days(14),
            },
        )
    }

    /// Ann exists with `user`'s flags, and the password check answers `matches`.
    fn with_ann(mut self, user: User, matches: bool) -> Self {
        let (id, refused) = (user.id, !matches || !user.is_active);
        self.users
            .expect_find_credentials_by_email()
            .withf(|email| *email == EmailAddress::new(EMAIL).unwrap())
            .returning(move |_| {
                Ok(Some(UserCredentials {
                    user: user.clone(),
                    password_hash: PasswordHash::new(HASH.into()),
                }))
            });
        self.hasher
            .expect_verify_password()
            .withf(|_, hash| hash.as_str() == HASH)
            .times(1)
            .returning(move |_, _| Ok(matches));
        if refused {
            // A refused login of an existing account is recorded, from where it came.
            self.events
                .expect_record_events_detached()
                .withf(move |events| {
                    matches!(events.as_slice(), [event] if event.user_id == id
                        && event.kind == SecurityEventKind::LoginFailed
                        && event.context.ip_address == Some("192.0.2.7".parse().unwrap())
                        && event.context.user_agent.as_deref() == Some("test agent")
                        && event.context.session_id.is_none())
                })
                .times(1)
                .return_const(());
        }
        self
    }

    /// Ann has no second factor.
    fn without_second_factor(mut self) -> Self {
        self.mfa.expect_find_totp().returning(|_| Ok(None));
        self
    }

    /// Sessions are stored as given, with their first refresh token hashed, and tokens say
    /// what they were issued for.
    fn issuing(mut self) -> Self {
        self.sessions
            .expect_create_session()
            .withf(|new, refresh, max_sessions, events| {
                *max_sessions == crate::sessions::DEFAULT_MAX_SESSIONS
                    && refresh.hash.as_str() == "hash-of-next-refresh"
                    && refresh.expires_at > new.created_at + TimeDelta::days(13)
                    && new.expires_at > new.created_at + TimeDelta::days(29)
                    // The login is recorded with its session, from where it came.
                    && matches!(events, [event] if event.kind == SecurityEventKind::Login
                        && event.user_id == new.user_id
                        && event.context.session_id == Some(new.id)
                        && event.context.ip_address == new.origin.ip_address
                        && event.context.user_agent == new.origin.user_agent)
            })
            .times(1)
            .returning(|new, _, _, _| {
                Ok(Session {
                    id: new.id,
                    user_id: new.user_id,
                    created_at: new.created_at,
                    expires_at: new.expires_at,
                    revoked_at: None,
                    scopes: new.scopes,
                    last_used_at: new.created_at,
                    origin: new.origin.clone(),
                })
            });
        self.expect_issue();
        self
    }

    fn expect_issue(&mut self) {
        self.issuer.expect_issue().times(1).returning(|grant| {
            Ok(IssuedToken {
                token: format!(
                    "token-for-{}-{}-{}-{}",
                    grant.user_id,
                    grant.scopes,
                    grant.client_id.as_str(),
                    grant.auth_methods.as_stored()
                ),
                expires_in: Duration::from_secs(900),
            })
        });
    }

    fn never_issuing(mut self) -> Self {
        self.sessions.expect_create_session().never();
        self.issuer.expect_issue().never();
        self
    }
}

fn login(username: &str, scope: Option<&str>) -> PasswordLogin {
    PasswordLogin {
        username: username.into(),
        password: Password::candidate("correct horse".into()).unwrap(),
        scope: scope.map(Into::into),
        otp: None,
        origin: SessionOrigin {
            client_id: ClientId::new("test-client").unwrap(),
            user_agent: Some("test agent".into()),
            ip_address: Some("192.0.2.7".parse().unwrap()),
            auth_methods: AuthMethods::PasswordAndOtp,
        },
    }
}

#[tokio::test]
async fn login_with_the_right_password_opens_a_session_and_issues_tokens() {
    let service = Mocks::default()
        .with_ann(ann(true, false), true)
        .without_second_factor()
        .issuing()
        .service();

    let grant = service.login(login(EMAIL, None)).await.unwrap();

    // The login's client, and the service's own word on how it was authenticated.
    assert_eq!(
        grant.access_token,
        "token-for-1-profile posts:read posts:write-test-client-pwd"
    );
    assert_eq!(grant.refresh_token, "next-refresh");
    assert_eq!(grant.expires_in, Duration::from_secs(900));
    assert_eq!(grant.scopes.to_string(), "profile posts:read posts:write");
}

#[tokio::test]
async fn login_finds_the_account_whatever_the_case_and_spacing_of_the_email() {
    let service = Mocks::default()
        .with_ann(ann(true, false), true)
        .without_second_factor()
        .issuing()
        .service();

    assert!(
        service
            .login(login(" Ann@Example.com ", None))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn login_with_a_wrong_password_is_rejected() {
    let service = Mocks::default()
        .with_ann(ann(true, false), false)
        .never_issuing()
        .service();

    let err = service.login(login(EMAIL, None)).await.unwrap_err();

    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn login_with_unknown_email_is_rejected_after_a_dummy_verification() {
    let mut mocks = Mocks::default();
    // No account, no event.
    mocks.events.expect_record_events_detached().never();
    mocks
        .users
        .expect_find_credentials_by_email()
        .returning(|_| Ok(None));
    mocks.hasher.expect_verify_password().never();
    mocks
        .hasher
        .expect_verify_dummy()
        .times(1)
        .returning(|_| Ok(()));
    let service = mocks.never_issuing().service();

    let err = service.login(login(EMAIL, None)).await.unwrap_err();

    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn login_with_a_malformed_email_is_rejected_like_an_unknown_one() {
    let mut mocks = Mocks::default();
    mocks.users.expect_find_credentials_by_email().never();
    mocks
        .hasher
        .expect_verify_dummy()
        .times(1)
        .returning(|_| Ok(()));
    let service = mocks.never_issuing().service();

    let err = service
        .login(login("not an email", None))
        .await
        .unwrap_err();

    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn login_to_a_disabled_account_is_rejected_even_with_the_right_password() {
    let service = Mocks::default()
        .with_ann(ann(false, false), true)
        .never_issuing()
        .service();

    let err = service.login(login(EMAIL, None)).await.unwrap_err();

    assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn with_verified_email_required_only_a_verified_account_logs_in() {
    let unverified = Mocks::default()
        .with_ann(ann(true, false), true)
        .never_issuing()
        .service()
        .requiring_verified_email(true);
    let err = unverified.login(login(EMAIL, None)).await.unwrap_err();
    assert!(matches!(err, LoginError::EmailNotVerified), "{err:?}");

    let verified = Mocks::default()
        .with_ann(
            User {
                email_verified: true,
                ..ann(true, false)
            },
            true,
        )
        .without_second_factor()
        .issuing()
        .service()
        .requiring_verified_email(true);
    assert!(verified.login(login(EMAIL, None)).await.is_ok());
}

#[tokio::test]
async fn login_with_an_unknown_scope_is_rejected_before_checking_the_password() {
    let mut mocks = Mocks::default();
    mocks.users.expect_find_credentials_by_email().never();
    mocks.hasher.expect_verify_password().never();
    let service = mocks.never_issuing().service();

    let err = service
        .login(login(EMAIL, Some("profile sudo")))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, LoginError::InvalidScope(UnknownScopeError(name)) if name == "sudo"),
        "{err:?}"
    );
}

#[tokio::test]
async fn login_grants_only_the_requested_scopes() {
    let service = Mocks::default()
        .with_ann(ann(true, false), true)
        .without_second_factor()
        .issuing()
        .service();

    let grant = service
        .login(login(EMAIL, Some("posts:read")))
        .await
        .unwrap();

    assert_eq!(grant.scopes.to_string(), "posts:read");
}

#[tokio::test]
async fn login_drops_scopes_the_account_may_not_hold() {
    let service = Mocks::default()
        .with_ann(ann(true, false), true)
        .without_second_factor()
        .issuing()
        .service();

    let grant = service
        .login(login(EMAIL, Some("profile admin")))
        .await
        .unwrap();

    assert_eq!(grant.scopes.to_string(), "profile");
}

#[tokio::test]
async fn admins_get_the_admin_scope_by_default() {
    let service = Mocks::default()
        .with_ann(ann(true, true), true)
        .without_second_factor()
        .issuing()
        .service();

    let grant = service.login(login(EMAIL, None)).await.unwrap();

    assert!(grant.scopes.contains(Scope::Admin));
}

#[tokio::test]
async fn a_storage_failure_during_login_is_unknown_not_a_wrong_password() {
    let mut mocks = Mocks::default();
    mocks
        .users
        .expect_find_credentials_by_email()
        .returning(|_| Err(anyhow::anyhow!("connection reset")));
    let service = mocks.never_issuing().service();

    let err = service.login(login(EMAIL, None)).await.unwrap_err();

    assert!(matches!(err, LoginError::Unknown(_)), "{err:?}");
}

mod authenticate;
mod mfa;
mod personal;
mod refresh;
mod sessions;
