//! Refreshing and logging out.

use super::*;

fn refresh(scope: Option<&str>) -> RefreshLogin {
    RefreshLogin {
        refresh_token: "old-refresh".into(),
        scope: scope.map(Into::into),
        origin: RequestOrigin::new(Some("198.51.100.4".parse().unwrap()), Some("thief/1.0")),
    }
}

/// Mocks where presenting `old-refresh` rotates to `outcome`, and Ann is `user`.
fn rotating(outcome: Rotation, user: Option<User>) -> Mocks {
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_rotate_refresh_token()
        .withf(|presented, next, _| {
            presented.as_str() == "hash-of-old-refresh"
                && next.hash.as_str() == "hash-of-next-refresh"
        })
        .times(1)
        .returning(move |_, _, _| Ok(outcome.clone()));
    mocks
        .users
        .expect_find_user()
        .returning(move |_| Ok(user.clone()));
    mocks
}

#[tokio::test]
async fn refreshing_rotates_the_token_and_keeps_the_sessions_scopes() {
    let mut session = session_of(UserId::new(1), false, "profile posts:read");
    session.origin = SessionOrigin {
        client_id: ClientId::new("mobile").unwrap(),
        auth_methods: AuthMethods::PasswordAndOtp,
        ..SessionOrigin::default()
    };
    let mut mocks = rotating(Rotation::Rotated(session.clone()), Some(ann(true, false)));
    mocks.expect_issue();
    mocks.sessions.expect_revoke_session().never();

    let grant = mocks.service().refresh(refresh(None)).await.unwrap();

    assert_eq!(grant.refresh_token, "next-refresh");
    assert_eq!(grant.session_id, session.id);
    // The login's client and authentication methods, kept.
    assert_eq!(
        grant.access_token,
        "token-for-1-profile posts:read-mobile-pwd otp"
    );
}

#[tokio::test]
async fn refreshing_may_narrow_the_scopes() {
    let session = session_of(UserId::new(1), false, "profile posts:read");
    let mut mocks = rotating(Rotation::Rotated(session.clone()), Some(ann(true, false)));
    mocks
        .sessions
        .expect_find_session_by_refresh_token()
        .returning(move |_| Ok(Some(session.clone())));
    mocks.expect_issue();

    let grant = mocks
        .service()
        .refresh(refresh(Some("posts:read")))
        .await
        .unwrap();

    assert_eq!(grant.scopes.to_string(), "posts:read");
}

#[tokio::test]
async fn asking_a_refresh_for_more_scopes_is_refused_without_spending_the_token() {
    let session = session_of(UserId::new(1), false, "profile posts:read");
    let mut mocks = Mocks::default();
    mocks
        .sessions
        .expect_find_session_by_refresh_token()
        .withf(|presented| presented.as_str() == "hash-of-old-refresh")
        .returning(move |_| Ok(Some(session.clone())));
    mocks.sessions.expect_rotate_refresh_token().never();

    let err = mocks
        .service()
        .refresh(refresh(Some("posts:write")))
        .await
        .unwrap_err();

    assert!(matches!(err, RefreshError::InvalidScope(_)), "{err:?}");
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_the_whole_session() {
    let stolen = SessionId::random();
    let mut mocks = rotating(Rotation::Replayed(stolen), Some(ann(true, false)));
    mocks.sessions.expect_find_session().returning(move |_| {
        let mut session = session_of(UserId::new(1), false, "profile");
        session.id = stolen;
        Ok(Some(session))
    });
    // The end is recorded as a reuse, with where the replay came from.
    mocks
        .sessions
        .expect_revoke_session()
        .withf(move |id, _, events| {
            *id == stolen
                && matches!(events, [event] if event.kind == SecurityEventKind::RefreshReuseDetected
                    && event.user_id == UserId::new(1)
                    && event.context.session_id == Some(stolen)
                    && event.context.ip_address == Some("198.51.100.4".parse().unwrap())
                    && event.context.user_agent.as_deref() == Some("thief/1.0"))
        })
        .times(1)
        .returning(|_, _, _| Ok(true));
    mocks.issuer.expect_issue().never();

    let err = mocks.service().refresh(refresh(None)).await.unwrap_err();

    assert!(
        matches!(err, RefreshError::Replayed(id) if id == stolen),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_or_expired_refresh_token_is_an_invalid_grant() {
    let mut mocks = rotating(Rotation::Invalid, Some(ann(true, false)));
    mocks.sessions.expect_revoke_session().never();
    mocks.issuer.expect_issue().never();

    let err = mocks.service().refresh(refresh(None)).await.unwrap_err();

    assert!(matches!(err, RefreshError::InvalidGrant), "{err:?}");
}

/// Refreshing with `mocks` is refused as an invalid grant, and nothing is issued.
async fn assert_invalid_grant(mut mocks: Mocks) {
    mocks.issuer.expect_issue().never();
    let err = mocks.service().refresh(refresh(None)).await.unwrap_err();
    assert!(matches!(err, RefreshError::InvalidGrant), "{err:?}");
}

#[tokio::test]
async fn a_refresh_token_of_an_ended_session_or_a_disabled_user_is_an_invalid_grant() {
    let ended = session_of(UserId::new(1), true, "profile");
    assert_invalid_grant(rotating(Rotation::Rotated(ended), Some(ann(true, false)))).await;

    let live = session_of(UserId::new(1), false, "profile");
    let disabled = Some(ann(false, false));
    assert_invalid_grant(rotating(Rotation::Rotated(live.clone()), disabled)).await;
    assert_invalid_grant(rotating(Rotation::Rotated(live), None)).await;
}

#[tokio::test]
async fn a_demoted_admin_refreshes_without_the_admin_scope() {
    let session = session_of(UserId::new(1), false, "profile admin");
    let mut mocks = rotating(Rotation::Rotated(session), Some(ann(true, false)));
    mocks.expect_issue();

    let grant = mocks.service().refresh(refresh(None)).await.unwrap();

    assert_eq!(grant.scopes.to_string(), "profile");
}

#[tokio::test]
async fn logging_out_ends_the_callers_session() {
    let principal = LoginPrincipal::new(
        ann(true, false),
        SessionId::random(),
        Scopes::empty(),
        RequestOrigin::new(None, Some("curl/8")),
    );
    let mut mocks = Mocks::default();
    let session_id = principal.session_id();
    mocks
        .sessions
        .expect_revoke_session()
        .withf(move |id, _, events| {
            *id == session_id
                && matches!(events, [event] if event.kind == SecurityEventKind::Logout
                    && event.context.session_id == Some(session_id)
                    && event.context.user_agent.as_deref() == Some("curl/8"))
        })
        .times(1)
        .returning(|_, _, _| Ok(true));

    mocks.service().logout(&principal).await.unwrap();
}
