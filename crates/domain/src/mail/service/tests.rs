use chrono::{DateTime, Utc};
use mockall::predicate::always;

use super::*;
use crate::{
    accounts::{MockUserRepository, PasswordHash, UserCredentials, UserId},
    crypto::{MockPasswordHasher, MockSecretCodec, SecretHash},
    mail::{MockMailRepository, MockMailSender, QueuedMail},
    scope::Scopes,
    sessions::SessionId,
};

fn user(id: i64, email: &str, is_active: bool) -> User {
    User {
        id: UserId::new(id),
        email: EmailAddress::new(email).unwrap(),
        created_at: Utc::now(),
        is_active,
        is_admin: false,
        email_verified: false,
    }
}

fn email(raw: &str) -> EmailAddress {
    EmailAddress::new(raw).unwrap()
}

fn credentials(id: i64, address: &str, is_active: bool) -> UserCredentials {
    UserCredentials {
        user: user(id, address, is_active),
        password_hash: PasswordHash::new("$hash".into()),
    }
}

/// A codec whose tokens are `secret` and hash as `#` + themselves.
fn codec() -> MockSecretCodec {
    let mut codec = MockSecretCodec::new();
    codec
        .expect_generate()
        .returning(|| ("secret".to_owned(), SecretHash::new("#secret".into())));
    codec
        .expect_hash()
        .returning(|presented| SecretHash::new(format!("#{presented}")));
    codec
}

fn service(
    users: MockUserRepository,
    mail: MockMailRepository,
    hasher: MockPasswordHasher,
) -> EmailService {
    EmailService::new(
        EmailPorts {
            users: Arc::new(users),
            mail: Arc::new(mail),
            hasher: Arc::new(hasher),
            secrets: Arc::new(codec()),
        },
        EmailTokenLifetimes::default(),
    )
}

fn stored_token(purpose: EmailTokenPurpose, used: bool, expires_at: DateTime<Utc>) -> EmailToken {
    EmailToken {
        user_id: UserId::new(7),
        purpose,
        email: email("ann@example.com"),
        expires_at,
        used,
    }
}

fn finding(mail: &mut MockMailRepository, token: EmailToken) {
    mail.expect_find_email_token()
        .withf(|hash| hash.as_str() == "#presented")
        .returning(move |_| Ok(Some(token.clone())));
}

/// An active account (id 7), and a mail store that finds a live, unspent token of `purpose`
/// for it.
fn live_token(purpose: EmailTokenPurpose) -> (MockUserRepository, MockMailRepository) {
    let mut users = MockUserRepository::new();
    with_user(&mut users, true);
    let mut mail = MockMailRepository::new();
    finding(
        &mut mail,
        stored_token(purpose, false, Utc::now() + TimeDelta::minutes(5)),
    );
    (users, mail)
}

fn with_user(users: &mut MockUserRepository, is_active: bool) {
    users
        .expect_find_user()
        .returning(move |id| Ok(Some(user(id.get(), "ann@example.com", is_active))));
}

fn hashing() -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .returning(|_| Ok(PasswordHash::new("$new".into())));
    hasher
}

fn new_password() -> Password {
    Password::new("a new password".into()).unwrap()
}

#[tokio::test]
async fn a_reset_is_mailed_to_active_accounts_only() {
    let mut users = MockUserRepository::new();
    users
        .expect_find_credentials_by_email()
        .returning(|address| {
            Ok(match address.as_str() {
                "ann@example.com" => Some(credentials(7, "Ann@Example.com", true)),
                "off@example.com" => Some(credentials(8, "off@example.com", false)),
                _ => None,
            })
        });
    let mut mail = MockMailRepository::new();
    mail.expect_issue_email_token()
        .withf(|user, token, mails| {
            *user == UserId::new(7)
                && token.purpose == EmailTokenPurpose::PasswordReset
                && token.hash.as_str() == "#secret"
                && token.expires_at - token.created_at == TimeDelta::minutes(30)
                && mails.len() == 1
                && mails[0].kind == MailKind::PasswordReset
                && mails[0].to.as_str() == "Ann@Example.com"
                && mails[0].token.as_ref().map(MailToken::expose) == Some("secret")
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let service = service(users, mail, MockPasswordHasher::new());

    for address in ["ann@example.com", "off@example.com", "nobody@example.com"] {
        service
            .request_password_reset(&email(address))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_reset_sets_the_password_and_records_the_event() {
    let (users, mut mail) = live_token(EmailTokenPurpose::PasswordReset);
    mail.expect_reset_password()
        .withf(|token, user, hash, _, events| {
            token.as_str() == "#presented"
                && *user == UserId::new(7)
                && hash.as_str() == "$new"
                && events.len() == 1
                && events[0].kind == SecurityEventKind::PasswordReset
                && events[0].user_id == UserId::new(7)
                && events[0].context.session_id.is_none()
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    let service = service(users, mail, hashing());

    service
        .reset_password("presented", &new_password(), &RequestOrigin::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn spent_expired_misused_or_orphaned_tokens_are_refused_before_any_hashing() {
    let live = Utc::now() + TimeDelta::minutes(5);
    let cases = [
        (
            stored_token(EmailTokenPurpose::PasswordReset, true, live),
            true,
        ),
        (
            stored_token(
                EmailTokenPurpose::PasswordReset,
                false,
                Utc::now() - TimeDelta::seconds(1),
            ),
            true,
        ),
        (
            stored_token(EmailTokenPurpose::EmailVerification, false, live),
            true,
        ),
        // Live, but its account was disabled since.
        (
            stored_token(EmailTokenPurpose::PasswordReset, false, live),
            false,
        ),
    ];
    for (token, active) in cases {
        let mut users = MockUserRepository::new();
        with_user(&mut users, active);
        let mut mail = MockMailRepository::new();
        finding(&mut mail, token.clone());
        // No hasher expectation: hashing would panic the mock.
        let service = service(users, mail, MockPasswordHasher::new());

        let refused = service
            .reset_password("presented", &new_password(), &RequestOrigin::default())
            .await;

        assert!(
            matches!(refused, Err(ConfirmTokenError::InvalidToken)),
            "{token:?}, active {active}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_reset_token_spent_by_a_racing_request_is_refused() {
    let (users, mut mail) = live_token(EmailTokenPurpose::PasswordReset);
    mail.expect_reset_password()
        .returning(|_, _, _, _, _| Ok(false));
    let service = service(users, mail, hashing());

    let refused = service
        .reset_password("presented", &new_password(), &RequestOrigin::default())
        .await;

    assert!(matches!(refused, Err(ConfirmTokenError::InvalidToken)));
}

#[tokio::test]
async fn verification_verifies_the_address_the_token_was_sent_to() {
    let (users, mut mail) = live_token(EmailTokenPurpose::EmailVerification);
    mail.expect_verify_email()
        .withf(|_, user, address, _, events| {
            *user == UserId::new(7)
                && address.as_str() == "ann@example.com"
                && events[0].kind == SecurityEventKind::EmailVerified
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));
    let service = service(users, mail, MockPasswordHasher::new());

    service
        .verify_email("presented", &RequestOrigin::default())
        .await
        .unwrap();
}

fn caller(verified: bool) -> Principal {
    Principal {
        user: User {
            email_verified: verified,
            ..user(7, "ann@example.com", true)
        },
        credential: crate::sessions::Credential::Session(SessionId::random()),
        scopes: Scopes::allowed_for(false),
        origin: RequestOrigin::default(),
    }
}

#[tokio::test]
async fn a_verified_address_gets_no_new_verification_mail() {
    let service = service(
        MockUserRepository::new(),
        MockMailRepository::new(),
        MockPasswordHasher::new(),
    );

    let refused = service.resend_verification(&caller(true)).await;

    assert!(matches!(
        refused,
        Err(ResendVerificationError::AlreadyVerified)
    ));
}

/// A hasher for which only `current pw` is the password, and the caller's credentials.
fn checking_password(users: &mut MockUserRepository) -> MockPasswordHasher {
    users
        .expect_find_credentials_by_id()
        .returning(|id| Ok(Some(credentials(id.get(), "ann@example.com", true))));
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify_password()
        .returning(|candidate, _| Ok(candidate.expose() == "current pw"));
    hasher
}

fn current_password() -> Password {
    Password::candidate("current pw".into()).unwrap()
}

#[tokio::test]
async fn an_email_change_mails_the_new_address_a_token_and_the_old_one_a_notice() {
    let mut users = MockUserRepository::new();
    let hasher = checking_password(&mut users);
    users
        .expect_find_credentials_by_email()
        .returning(|_| Ok(None));
    let mut mail = MockMailRepository::new();
    mail.expect_issue_email_token()
        .withf(|user, token, mails| {
            *user == UserId::new(7)
                && token.purpose == EmailTokenPurpose::EmailChange
                && token.email.as_str() == "new@example.com"
                && token.expires_at - token.created_at == TimeDelta::hours(24)
                && mails.len() == 2
                && mails[0].kind == MailKind::EmailChange
                && mails[0].to.as_str() == "new@example.com"
                && mails[0].token.is_some()
                && mails[1].kind == MailKind::EmailChangeNotice
                && mails[1].to.as_str() == "ann@example.com"
                && mails[1].token.is_none()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let service = service(users, mail, hasher);

    service
        .request_email_change(
            &caller(true),
            &current_password(),
            &email("new@example.com"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stolen_access_token_cannot_ask_for_an_email_change_without_the_password() {
    let mut users = MockUserRepository::new();
    let hasher = checking_password(&mut users);
    // No issue expectation: nothing may be queued.
    let service = service(users, MockMailRepository::new(), hasher);

    let refused = service
        .request_email_change(
            &caller(true),
            &Password::candidate("a guess".into()).unwrap(),
            &email("thief@example.com"),
        )
        .await;

    assert!(matches!(refused, Err(ChangeEmailError::IncorrectPassword)));
}

#[tokio::test]
async fn an_email_change_to_a_taken_address_is_refused_at_once() {
    let mut users = MockUserRepository::new();
    let hasher = checking_password(&mut users);
    users
        .expect_find_credentials_by_email()
        .returning(|_| Ok(Some(credentials(9, "bob@example.com", true))));
    // No issue expectation: nothing may be queued.
    let service = service(users, MockMailRepository::new(), hasher);

    let refused = service
        .request_email_change(
            &caller(true),
            &current_password(),
            &email("bob@example.com"),
        )
        .await;

    assert!(matches!(refused, Err(ChangeEmailError::Duplicate { .. })));
}

#[tokio::test]
async fn a_confirmed_change_to_an_address_taken_meanwhile_is_a_conflict() {
    let (users, mut mail) = live_token(EmailTokenPurpose::EmailChange);
    mail.expect_change_email_confirmed()
        .withf(|_, _, _, _, events| events[0].kind == SecurityEventKind::EmailChanged)
        .returning(|_, _, address, _, _| {
            Err(SaveUserError::Duplicate {
                email: address.as_str().to_owned(),
            })
        });
    let service = service(users, mail, MockPasswordHasher::new());

    let refused = service
        .confirm_email_change("presented", &RequestOrigin::default())
        .await;

    assert!(matches!(refused, Err(ConfirmTokenError::Duplicate { .. })));
}

mod delivery;
