//! The repository contract: every behaviour the domain relies on, run against both SQLite and
//! PostgreSQL through the same test bodies.

use chrono::{TimeDelta, Utc};
use warden_adapters::Store;
use warden_domain::ports::{CreateUserError, SessionRepository, UserRepository};
use warden_domain::{EmailAddress, NewSession, NewUser, PasswordHash, SessionId, UserId};

/// Runs each listed test body once per database.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = warden_adapters::testing::TestDb::sqlite().await;
                    super::$test(db.store()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = warden_adapters::testing::TestDb::postgres().await;
                    super::$test(db.store()).await;
                }
            )*
        }
    };
}

contract!(
    a_created_user_can_be_found_by_id_and_email,
    created_users_are_active_non_admins_with_increasing_ids,
    emails_are_unique_case_insensitively,
    a_missing_user_is_none,
    email_lookup_ignores_case_but_keeps_the_stored_spelling,
    a_created_session_can_be_found,
    a_missing_session_is_none,
    a_session_needs_an_existing_user,
    timestamps_round_trip_exactly,
);

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: EmailAddress::new(email).unwrap(),
        password_hash: PasswordHash::new(format!("$argon2id$hash-of-{email}")),
    }
}

fn new_session(user_id: UserId) -> NewSession {
    let now = Utc::now();
    NewSession {
        id: SessionId::random(),
        user_id,
        created_at: now,
        expires_at: now + TimeDelta::days(30),
    }
}

async fn a_created_user_can_be_found_by_id_and_email(store: Store) {
    let created = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();

    let by_id = store.find_by_id(created.id).await.unwrap().unwrap();
    assert_eq!(by_id, created);

    let credentials = store
        .find_credentials_by_email(&EmailAddress::new("ann@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(credentials.user, created);
    assert_eq!(
        credentials.password_hash.as_str(),
        "$argon2id$hash-of-ann@example.com"
    );
}

async fn created_users_are_active_non_admins_with_increasing_ids(store: Store) {
    let first = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();
    let second = UserRepository::create(&store, &new_user("bob@example.com"))
        .await
        .unwrap();

    assert!(first.is_active && !first.is_admin);
    assert!(second.id.get() > first.id.get());
    assert!((Utc::now() - first.created_at) < TimeDelta::minutes(1));
}

async fn emails_are_unique_case_insensitively(store: Store) {
    UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();

    let err = UserRepository::create(&store, &new_user("ANN@Example.com"))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, CreateUserError::Duplicate { email } if email == "ANN@Example.com"),
        "{err:?}"
    );
}

async fn a_missing_user_is_none(store: Store) {
    assert_eq!(store.find_by_id(UserId::new(4242)).await.unwrap(), None);
    let nobody = EmailAddress::new("nobody@example.com").unwrap();
    assert_eq!(
        store.find_credentials_by_email(&nobody).await.unwrap(),
        None
    );
}

async fn email_lookup_ignores_case_but_keeps_the_stored_spelling(store: Store) {
    UserRepository::create(&store, &new_user("Ann.Smith@Example.com"))
        .await
        .unwrap();

    let found = store
        .find_credentials_by_email(&EmailAddress::new("ann.smith@EXAMPLE.COM").unwrap())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(found.user.email.as_str(), "Ann.Smith@Example.com");
}

async fn a_created_session_can_be_found(store: Store) {
    let user = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();
    let new = new_session(user.id);

    let created = SessionRepository::create(&store, &new).await.unwrap();
    let found = store.find(new.id).await.unwrap().unwrap();

    assert_eq!(found, created);
    assert_eq!(found.id, new.id);
    assert_eq!(found.user_id, user.id);
    assert_eq!(found.revoked_at, None);
    assert!(found.is_active_at(Utc::now()));
}

async fn a_missing_session_is_none(store: Store) {
    assert_eq!(store.find(SessionId::random()).await.unwrap(), None);
}

async fn a_session_needs_an_existing_user(store: Store) {
    let result = SessionRepository::create(&store, &new_session(UserId::new(4242))).await;
    assert!(result.is_err(), "a session of no user was stored");
    // Nothing half-written is left behind.
    assert!(store.find_by_id(UserId::new(4242)).await.unwrap().is_none());
}

async fn timestamps_round_trip_exactly(store: Store) {
    let user = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();
    let new = new_session(user.id);
    SessionRepository::create(&store, &new).await.unwrap();

    let found = store.find(new.id).await.unwrap().unwrap();

    // Both databases keep microseconds.
    let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros();
    assert_eq!(micros(found.created_at), micros(new.created_at));
    assert_eq!(micros(found.expires_at), micros(new.expires_at));
    assert_eq!(
        store.find_by_id(user.id).await.unwrap().unwrap().created_at,
        user.created_at
    );
}
