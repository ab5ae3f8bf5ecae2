//! Authenticating a bearer token: FastAPI's `get_current_user`.

use super::*;

/// Mocks where the token verifies to Ann's session `session` with `scopes`.
fn authenticating(session: Option<Session>, user: Option<User>, scopes: &str) -> AuthService {
    let mut mocks = Mocks::default();
    let session_id = session.as_ref().map_or_else(SessionId::random, |s| s.id);
    let scopes = Scopes::parse(scopes).unwrap();
    mocks
        .verifier
        .expect_verify_access_token()
        .with(eq("the-token"))
        .returning(move |_| {
            Ok(AccessClaims {
                user_id: UserId::new(1),
                session_id,
                scopes,
                details: crate::crypto::TokenDetails::default(),
            })
        });
    // One read gives both; a deleted user's sessions are gone with it.
    mocks
        .sessions
        .expect_find_session_with_user()
        .with(eq(session_id))
        .times(1)
        .returning(move |_| Ok(session.clone().zip(user.clone())));
    mocks.service()
}

#[tokio::test]
async fn a_valid_token_of_an_active_session_identifies_its_user() {
    let session = session_of(UserId::new(1), false, "profile");
    let session_id = session.id;
    let service = authenticating(Some(session), Some(ann(true, false)), "profile");

    let principal = service
        .authenticate("the-token", RequestOrigin::default())
        .await
        .unwrap();

    assert_eq!(principal.user.email.as_str(), EMAIL);
    assert_eq!(principal.session_id(), Some(session_id));
    assert!(principal.has_scope(Scope::Profile));
    assert!(!principal.has_scope(Scope::PostsRead));
}

#[tokio::test]
async fn a_demoted_admins_token_loses_the_admin_scope_at_once() {
    let session = session_of(UserId::new(1), false, "profile admin");
    let service = authenticating(Some(session), Some(ann(true, false)), "profile admin");

    let principal = service
        .authenticate("the-token", RequestOrigin::default())
        .await
        .unwrap();

    assert!(!principal.has_scope(Scope::Admin));
    assert!(principal.has_scope(Scope::Profile));
}

#[tokio::test]
async fn a_token_the_verifier_refuses_is_invalid() {
    let mut mocks = Mocks::default();
    mocks
        .verifier
        .expect_verify_access_token()
        .returning(|_| Err(InvalidTokenError::new("bad signature")));
    mocks.sessions.expect_find_session().never();
    let service = mocks.service();

    let err = service
        .authenticate("forged", RequestOrigin::default())
        .await
        .unwrap_err();

    assert!(
        matches!(&err, AuthenticateError::InvalidToken { reason } if reason == "bad signature"),
        "{err:?}"
    );
}

async fn assert_invalid(service: AuthService) {
    let err = service
        .authenticate("the-token", RequestOrigin::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthenticateError::InvalidToken { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_of_an_unknown_session_is_invalid() {
    assert_invalid(authenticating(None, Some(ann(true, false)), "profile")).await;
}

#[tokio::test]
async fn a_token_of_an_ended_session_is_invalid() {
    let session = session_of(UserId::new(1), true, "profile");
    assert_invalid(authenticating(
        Some(session),
        Some(ann(true, false)),
        "profile",
    ))
    .await;
}

#[tokio::test]
async fn a_token_naming_another_users_session_is_invalid() {
    let session = session_of(UserId::new(2), false, "profile");
    assert_invalid(authenticating(
        Some(session),
        Some(ann(true, false)),
        "profile",
    ))
    .await;
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_invalid() {
    let session = session_of(UserId::new(1), false, "profile");
    assert_invalid(authenticating(Some(session), None, "profile")).await;
}

#[tokio::test]
async fn a_token_of_a_disabled_user_is_invalid() {
    let session = session_of(UserId::new(1), false, "profile");
    assert_invalid(authenticating(
        Some(session),
        Some(ann(false, false)),
        "profile",
    ))
    .await;
}
