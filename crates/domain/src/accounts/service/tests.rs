use chrono::Utc;
use mockall::predicate::{always, eq};

use super::*;
use crate::{
    accounts::{MockUserRepository, PasswordHash, UserCredentials},
    crypto::MockPasswordHasher,
    events::SecurityEventKind,
    scope::Scopes,
    sessions::{MockSessionRepository, SessionId},
};

fn user(id: i64, email: &str) -> User {
    User {
        id: UserId::new(id),
        email: EmailAddress::new(email).unwrap(),
        created_at: Utc::now(),
        is_active: true,
        is_admin: false,
        email_verified: false,
    }
}

fn hasher_returning(hash: &'static str) -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .returning(move |_| Ok(PasswordHash::new(hash.into())));
    hasher
}

fn service(
    users: MockUserRepository,
    sessions: MockSessionRepository,
    hasher: MockPasswordHasher,
) -> UserService {
    UserService::new(UserPorts {
        users: Arc::new(users),
        sessions: Arc::new(sessions),
        hasher: Arc::new(hasher),
    })
}

fn password(raw: &str) -> Password {
    Password::new(raw.into()).unwrap()
}

#[tokio::test]
async fn registering_stores_the_hash_not_the_password() {
    let mut users = MockUserRepository::new();
    users
        .expect_create_user()
        .withf(|new_user| {
            new_user.password_hash.as_str() == "$hash"
                && new_user.email.as_str() == "ann@example.com"
                && !new_user.is_admin
                && !new_user.email_verified
        })
        .times(1)
        .returning(|_| Ok(user(7, "ann@example.com")));
    let service = service(
        users,
        MockSessionRepository::new(),
        hasher_returning("$hash"),
    );

    let registered = service
        .register(
            EmailAddress::new("ann@example.com").unwrap(),
            password("correct horse"),
        )
        .await
        .unwrap();

    assert_eq!(registered.id, UserId::new(7));
}

#[tokio::test]
async fn admins_are_created_as_admins() {
    let mut users = MockUserRepository::new();
    users
        .expect_create_user()
        // The operator who makes an admin vouches for the address.
        .withf(|new_user| new_user.is_admin && new_user.email_verified)
        .times(1)
        .returning(|_| Ok(user(1, "root@example.com")));
    let service = service(
        users,
        MockSessionRepository::new(),
        hasher_returning("$hash"),
    );

    service
        .create_admin(
            EmailAddress::new("root@example.com").unwrap(),
            password("correct horse"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn registering_a_taken_email_is_a_duplicate() {
    let mut users = MockUserRepository::new();
    users.expect_create_user().returning(|_| {
        Err(SaveUserError::Duplicate {
            email: "ann@example.com".into(),
        })
    });
    let service = service(
        users,
        MockSessionRepository::new(),
        hasher_returning("$hash"),
    );

    let err = service
        .register(
            EmailAddress::new("ANN@example.com").unwrap(),
            password("correct horse"),
        )
        .await
        .unwrap_err();

    assert!(matches!(err, RegisterError::Duplicate { .. }), "{err:?}");
}

#[tokio::test]
async fn a_failing_hasher_stores_nothing() {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_hash()
        .returning(|_| Err(anyhow::anyhow!("out of memory")));
    let mut users = MockUserRepository::new();
    users.expect_create_user().never();
    let service = service(users, MockSessionRepository::new(), hasher);

    let err = service
        .register(
            EmailAddress::new("ann@example.com").unwrap(),
            password("correct horse"),
        )
        .await
        .unwrap_err();

    assert!(matches!(err, RegisterError::Unknown(_)), "{err:?}");
}

#[tokio::test]
async fn getting_an_existing_user_returns_it() {
    let mut users = MockUserRepository::new();
    users
        .expect_find_user()
        .with(eq(UserId::new(3)))
        .returning(|_| Ok(Some(user(3, "bob@example.com"))));
    let service = service(
        users,
        MockSessionRepository::new(),
        MockPasswordHasher::new(),
    );

    let found = service.get(UserId::new(3)).await.unwrap();

    assert_eq!(found.email.as_str(), "bob@example.com");
}

#[tokio::test]
async fn getting_a_missing_user_is_not_found() {
    let mut users = MockUserRepository::new();
    users.expect_find_user().returning(|_| Ok(None));
    let service = service(
        users,
        MockSessionRepository::new(),
        MockPasswordHasher::new(),
    );

    let err = service.get(UserId::new(3)).await.unwrap_err();

    assert!(
        matches!(err, GetUserError::NotFound(id) if id == UserId::new(3)),
        "{err:?}"
    );
}

#[tokio::test]
async fn changing_to_a_taken_email_is_a_duplicate() {
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users.expect_update_email().returning(|_, email, _| {
        Err(SaveUserError::Duplicate {
            email: email.to_string(),
        })
    });
    let service = service(users, MockSessionRepository::new(), verifying_old());

    let err = service
        .change_email(
            &caller(),
            &password("current pw"),
            &EmailAddress::new("bob@example.com").unwrap(),
        )
        .await
        .unwrap_err();

    assert!(matches!(err, ChangeEmailError::Duplicate { .. }), "{err:?}");
}

/// A hasher for which the stored `$old` matches `current pw` only.
fn verifying_old() -> MockPasswordHasher {
    let mut hasher = MockPasswordHasher::new();
    hasher
        .expect_verify_password()
        .returning(|candidate, hash| {
            Ok(hash.as_str() == "$old" && candidate.expose() == "current pw")
        });
    hasher
}

#[tokio::test]
async fn a_stolen_access_token_cannot_change_the_email_without_the_password() {
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users.expect_update_email().never();
    let service = service(users, MockSessionRepository::new(), verifying_old());

    let err = service
        .change_email(
            &caller(),
            &password("a guess!"),
            &EmailAddress::new("thief@example.com").unwrap(),
        )
        .await
        .unwrap_err();

    assert!(
        matches!(err, ChangeEmailError::IncorrectPassword),
        "{err:?}"
    );
}

fn caller() -> LoginPrincipal {
    LoginPrincipal::new(
        user(1, "ann@example.com"),
        SessionId::random(),
        Scopes::allowed_for(false),
        crate::events::RequestOrigin::default(),
    )
}

fn with_credentials(users: &mut MockUserRepository) {
    users.expect_find_credentials_by_id().returning(|id| {
        Ok(Some(UserCredentials {
            user: user(id.get(), "ann@example.com"),
            password_hash: PasswordHash::new("$old".into()),
        }))
    });
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let caller = caller();
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users
        .expect_update_password()
        .withf(|id, hash, events| {
            *id == UserId::new(1)
                && hash.as_str() == "$new"
                && matches!(events, [event] if event.kind == SecurityEventKind::PasswordChanged)
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    let mut sessions = MockSessionRepository::new();
    sessions
        .expect_revoke_sessions_of_user()
        .with(
            eq(UserId::new(1)),
            eq(Some(caller.session_id())),
            always(),
            always(),
        )
        .times(1)
        .returning(|_, _, _, _| Ok(2));
    let mut hasher = hasher_returning("$new");
    hasher
        .expect_verify_password()
        .returning(|_, hash| Ok(hash.as_str() == "$old"));

    service(users, sessions, hasher)
        .change_password(&caller, &password("current pw"), &password("new password"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users.expect_update_password().never();
    let mut sessions = MockSessionRepository::new();
    sessions.expect_revoke_sessions_of_user().never();
    let mut hasher = MockPasswordHasher::new();
    hasher.expect_verify_password().returning(|_, _| Ok(false));
    hasher.expect_hash().never();

    let err = service(users, sessions, hasher)
        .change_password(&caller(), &password("wrong pw!"), &password("new password"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, ChangePasswordError::IncorrectPassword),
        "{err:?}"
    );
}

#[tokio::test]
async fn deleting_an_account_deletes_the_user() {
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users
        .expect_delete_user()
        .with(eq(UserId::new(1)))
        .times(1)
        .returning(|_| Ok(true));
    let service = service(users, MockSessionRepository::new(), verifying_old());

    service
        .delete(&caller(), &password("current pw"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stolen_access_token_cannot_delete_the_account_without_the_password() {
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users.expect_delete_user().never();
    let service = service(users, MockSessionRepository::new(), verifying_old());

    let err = service
        .delete(&caller(), &password("a guess!"))
        .await
        .unwrap_err();

    assert!(
        matches!(err, DeleteAccountError::IncorrectPassword),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_last_active_admin_cannot_delete_their_account() {
    let mut users = MockUserRepository::new();
    with_credentials(&mut users);
    users
        .expect_delete_user()
        .times(1)
        .returning(|_| Err(crate::accounts::UserChangeError::LastAdmin));
    let service = service(users, MockSessionRepository::new(), verifying_old());

    let err = service
        .delete(&caller(), &password("current pw"))
        .await
        .unwrap_err();

    assert!(matches!(err, DeleteAccountError::LastAdmin), "{err:?}");
    assert_eq!(err.to_string(), "at least one active admin must remain");
}
