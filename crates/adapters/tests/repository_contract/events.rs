//! Security events: stored with the change they record, listed and pruned.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    events_are_stored_with_the_change_they_record_and_only_if_it_happened,
    an_event_of_a_refused_change_is_not_stored,
    events_are_listed_newest_first_by_page_user_kind_and_age,
    old_events_are_deleted_and_an_accounts_go_with_it,
    a_detached_event_is_stored_after_the_call_returns,
);

async fn events_are_stored_with_the_change_they_record_and_only_if_it_happened(store: Store) {
    use SecurityEventKind::*;
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let new = new_session(ann.id);
    let login = event(ann.id, Login, Some(new.id));
    store
        .create_session(
            &new,
            &refresh_token("first", TimeDelta::days(1)),
            MAX_SESSIONS,
            std::slice::from_ref(&login),
        )
        .await
        .unwrap();
    let logout = [event(ann.id, Logout, Some(new.id))];
    assert!(
        store
            .revoke_session(new.id, Utc::now(), &logout)
            .await
            .unwrap()
    );
    // Nothing changes the second time, so nothing is recorded.
    assert!(
        !store
            .revoke_session(new.id, Utc::now(), &logout)
            .await
            .unwrap()
    );
    let other = seed.session(&ann, "second").await;
    let revoked = [event(ann.id, SessionRevoked, Some(other))];
    assert!(
        !store
            .revoke_session_of_user(ann.id, SessionId::random(), Utc::now(), &revoked)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_session_of_user(ann.id, other, Utc::now(), &revoked)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .revoke_sessions_of_user(ann.id, None, Utc::now(), &revoked)
            .await
            .unwrap(),
        0
    );
    let changed = [event(ann.id, PasswordChanged, None)];
    let hash = PasswordHash::new("$argon2id$new".into());
    assert!(
        store
            .update_password(ann.id, &hash, &changed)
            .await
            .unwrap()
    );
    assert!(
        !store
            .update_password(UserId::new(987_654), &hash, &changed)
            .await
            .unwrap()
    );
    let email = EmailAddress::new("ann@example.org").unwrap();
    store
        .update_email(ann.id, &email, &[event(ann.id, EmailChanged, None)])
        .await
        .unwrap()
        .unwrap();
    let flags = UserFlags {
        is_active: Some(false),
        is_admin: Some(true),
    };
    let flag_events = [
        event(ann.id, AccountDisabled, None),
        event(ann.id, AdminGranted, None),
    ];
    store
        .update_user_flags(ann.id, flags, &flag_events)
        .await
        .unwrap()
        .unwrap();

    let listed = events_of(&store, Some(ann.id)).await;
    assert_eq!(
        kinds(&listed),
        [
            AdminGranted,
            AccountDisabled,
            EmailChanged,
            PasswordChanged,
            SessionRevoked,
            Logout,
            Login
        ]
    );
    // Read back as written, on both databases.
    let first = listed.last().unwrap();
    assert_eq!(first.user_id, ann.id);
    assert_eq!(first.context, login.context);
    assert_eq!(first.at.timestamp_micros(), login.at.timestamp_micros());
    assert!(listed.windows(2).all(|pair| pair[0].id > pair[1].id));
}

async fn an_event_of_a_refused_change_is_not_stored(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let taken = EmailAddress::new("BOB@example.com").unwrap();
    let changed = [event(ann.id, SecurityEventKind::EmailChanged, None)];
    assert!(matches!(
        store.update_email(ann.id, &taken, &changed).await,
        Err(SaveUserError::Duplicate { .. })
    ));
    // A session of nobody is refused, with its event.
    let ghost = new_session(UserId::new(987_654));
    let login = [event(
        ghost.user_id,
        SecurityEventKind::Login,
        Some(ghost.id),
    )];
    assert!(
        store
            .create_session(
                &ghost,
                &refresh_token("ghost", TimeDelta::days(1)),
                MAX_SESSIONS,
                &login
            )
            .await
            .is_err()
    );
    // Events of a missing account are refused whole: the good one beside it is not stored.
    let mixed = [
        event(bob.id, SecurityEventKind::LoginFailed, None),
        event(UserId::new(987_654), SecurityEventKind::LoginFailed, None),
    ];
    assert!(store.record_events(&mixed).await.is_err());
    assert!(events_of(&store, None).await.is_empty());
}

async fn events_are_listed_newest_first_by_page_user_kind_and_age(store: Store) {
    use SecurityEventKind::*;
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let mut old = event(ann.id, Login, None);
    old.at = Utc::now() - TimeDelta::days(100);
    store.record_events(&[old]).await.unwrap();
    for kind in [Login, LoginFailed, Logout, Login, PasswordChanged] {
        store
            .record_events(&[event(ann.id, kind, None)])
            .await
            .unwrap();
    }
    store
        .record_events(&[event(bob.id, Login, None)])
        .await
        .unwrap();

    let query = |user_id, kind, before, limit| EventQuery {
        user_id,
        kind,
        before,
        limit: EventLimit::new(limit).unwrap(),
        since: Utc::now() - TimeDelta::days(90),
    };
    // The one from 100 days ago is past the cut.
    let anns = store
        .list_events(&query(Some(ann.id), None, None, 200))
        .await
        .unwrap();
    assert_eq!(
        kinds(&anns),
        [PasswordChanged, Login, Logout, LoginFailed, Login]
    );
    // Keyset pages: each starts before the last id of the one before.
    let first = store
        .list_events(&query(Some(ann.id), None, None, 2))
        .await
        .unwrap();
    assert_eq!(kinds(&first), [PasswordChanged, Login]);
    let second = store
        .list_events(&query(Some(ann.id), None, Some(first[1].id), 2))
        .await
        .unwrap();
    assert_eq!(kinds(&second), [Logout, LoginFailed]);
    let last = store
        .list_events(&query(Some(ann.id), None, Some(second[1].id), 2))
        .await
        .unwrap();
    assert_eq!(kinds(&last), [Login]);
    // Every account, by kind.
    let logins = store
        .list_events(&query(None, Some(Login), None, 200))
        .await
        .unwrap();
    assert_eq!(logins.len(), 3);
    assert_eq!(logins[0].user_id, bob.id);
    assert!(
        store
            .list_events(&query(None, Some(MfaEnabled), None, 200))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_events(&query(None, None, Some(EventId::new(1)), 200))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn old_events_are_deleted_and_an_accounts_go_with_it(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let mut old = event(ann.id, SecurityEventKind::Login, None);
    old.at = Utc::now() - TimeDelta::days(91);
    let fresh = event(ann.id, SecurityEventKind::Logout, None);
    store.record_events(&[old, fresh]).await.unwrap();
    store
        .record_events(&[event(bob.id, SecurityEventKind::Login, None)])
        .await
        .unwrap();

    let deleted = store
        .delete_events_before(Utc::now() - TimeDelta::days(90))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let everyone = |store: Store| async move {
        store
            .list_events(&EventQuery {
                user_id: None,
                kind: None,
                before: None,
                limit: EventLimit::new(200).unwrap(),
                since: Utc::now() - TimeDelta::days(1000),
            })
            .await
            .unwrap()
    };
    assert_eq!(everyone(store.clone()).await.len(), 2);
    store.delete_user(ann.id).await.unwrap();
    let left = everyone(store.clone()).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].user_id, bob.id);
}

async fn a_detached_event_is_stored_after_the_call_returns(store: Store) {
    let ann = Seed(&store).user("ann").await;
    store.record_events_detached(vec![event(ann.id, SecurityEventKind::LoginFailed, None)]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let events = events_of(&store, Some(ann.id)).await;
        if !events.is_empty() {
            assert_eq!(kinds(&events), [SecurityEventKind::LoginFailed]);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
