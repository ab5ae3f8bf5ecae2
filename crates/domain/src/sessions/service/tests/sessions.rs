//! The caller's sessions: listing, ending one, ending the others, and recording their use.

use mockall::predicate::always;

use super::*;

fn principal(session_id: SessionId) -> LoginPrincipal {
    LoginPrincipal::new(
        ann(true, false),
        session_id,
        Scopes::parse("profile").unwrap(),
        RequestOrigin::default(),
    )
}

#[tokio::test]
async fn the_list_is_the_callers_active_sessions() {
    let page = crate::sessions::SessionPage {
        before: Some(SessionId::random()),
        limit: crate::events::EventLimit::new(2).unwrap(),
    };
    let listed = vec![
        session_of(UserId::new(1), false, "profile"),
        session_of(UserId::new(1), false, "profile"),
    ];
    let mut mocks = Mocks::default();
    let expected = listed.clone();
    mocks
        .sessions
        .expect_list_active_sessions()
        .with(eq(UserId::new(1)), always(), eq(page))
        .times(1)
        .returning(move |_, _, _| Ok(listed.clone()));

    let sessions = mocks
        .service()
        .sessions(&principal(expected[0].id), page)
        .await
        .unwrap();

    assert_eq!(sessions, expected);
}

#[tokio::test]
async fn ending_a_session_of_the_caller_ends_it() {
    let target = SessionId::random();
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_revoke_session_of_user()
        .withf(move |user, id, _, events| {
            *user == UserId::new(1)
                && *id == target
                && matches!(events, [event] if event.kind == SecurityEventKind::SessionRevoked
                    && event.context.session_id == Some(target))
        })
        .times(1)
        .returning(|_, _, _, _| Ok(true));

    let ended = mocks
        .service()
        .end_session(&principal(SessionId::random()), target)
        .await;

    assert!(ended.is_ok());
}

#[tokio::test]
async fn ending_a_session_that_is_not_the_callers_active_one_is_not_found() {
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_revoke_session_of_user()
        .times(1)
        .returning(|_, _, _, _| Ok(false));

    let ended = mocks
        .service()
        .end_session(&principal(SessionId::random()), SessionId::random())
        .await;

    assert!(matches!(ended, Err(EndSessionError::NotFound)));
}

#[tokio::test]
async fn ending_the_other_sessions_spares_the_callers() {
    let own = SessionId::random();
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_revoke_sessions_of_user()
        .withf(move |user, except, _, events| {
            *user == UserId::new(1)
                && *except == Some(own)
                && matches!(events, [event] if event.kind == SecurityEventKind::SessionRevoked)
        })
        .times(1)
        .returning(|_, _, _, _| Ok(3));

    let ended = mocks.service().end_other_sessions(&principal(own)).await;

    assert_eq!(ended.unwrap(), 3);
}

/// Mocks where the token verifies to `session`, whose user is Ann.
fn authenticating(session: Session) -> Mocks {
    let mut mocks = Mocks::default();
    let session_id = session.id;
    mocks
        .verifier
        .expect_verify_access_token()
        .returning(move |_| {
            Ok(AccessClaims {
                user_id: UserId::new(1),
                session_id,
                scopes: Scopes::parse("profile").unwrap(),
                details: crate::crypto::TokenDetails::default(),
            })
        });
    mocks
        .sessions
        .expect_find_session_with_user()
        .returning(move |_| Ok(Some((session.clone(), ann(true, false)))));
    mocks
}

#[tokio::test]
async fn a_request_records_its_use_of_a_session_last_used_over_a_minute_ago() {
    let mut session = session_of(UserId::new(1), false, "profile");
    session.last_used_at = Utc::now() - TimeDelta::seconds(90);
    let id = session.id;
    let mut mocks = authenticating(session);
    mocks
        .sessions
        .expect_record_session_use()
        .with(eq(id), always())
        .times(1)
        .returning(|_, _| Ok(()));

    assert!(
        mocks
            .service()
            .authenticate("the-token", RequestOrigin::default())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_request_writes_nothing_for_a_session_used_within_the_minute() {
    let mut session = session_of(UserId::new(1), false, "profile");
    session.last_used_at = Utc::now() - TimeDelta::seconds(20);
    let mut mocks = authenticating(session);
    mocks.sessions.expect_record_session_use().never();

    assert!(
        mocks
            .service()
            .authenticate("the-token", RequestOrigin::default())
            .await
            .is_ok()
    );
}
