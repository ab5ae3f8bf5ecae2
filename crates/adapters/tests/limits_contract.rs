//! The repository contract of the account's bounds (contract section 5, "Account safety"):
//! the last active admin, the caps on sessions and personal tokens, pruning what ended, and
//! paging the lists of sessions and tokens. Run against both SQLite and PostgreSQL through the
//! same test bodies.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use warden_adapters::Store;
use warden_adapters::testing::Seed;
use warden_domain::{
    accounts::{UserChangeError, UserFlags, UserId, UserRepository},
    crypto::SecretHash,
    events::{
        EventContext, EventLimit, EventQuery, NewSecurityEvent, SecurityEventKind,
        SecurityEventRepository,
    },
    personal_tokens::{
        NewPersonalToken, PersonalTokenId, PersonalTokenName, PersonalTokenPage,
        PersonalTokenRepository,
    },
    scope::Scopes,
    sessions::{
        AuthMethods, ClientId, NewRefreshToken, NewSession, Rotation, SessionId, SessionOrigin,
        SessionPage, SessionRepository,
    },
};

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    the_last_active_admin_is_never_demoted_disabled_or_deleted,
    two_admins_demoting_each_other_at_once_leave_exactly_one,
    a_login_past_the_cap_ends_the_least_recently_used_session,
    concurrent_logins_never_leave_more_sessions_than_the_cap,
    a_personal_token_past_the_cap_is_refused_and_only_live_ones_count,
    concurrent_personal_tokens_never_exceed_the_cap,
    pruning_deletes_sessions_and_refresh_tokens_that_ended_before_the_cutoff,
    pruning_deletes_personal_tokens_revoked_or_expired_before_the_cutoff,
    sessions_page_newest_first_in_disjoint_pages,
    personal_tokens_page_newest_first_in_disjoint_pages,
);

fn demote() -> UserFlags {
    UserFlags {
        is_active: None,
        is_admin: Some(false),
    }
}

fn disable() -> UserFlags {
    UserFlags {
        is_active: Some(false),
        is_admin: None,
    }
}

fn admin_event(user: UserId, kind: SecurityEventKind) -> NewSecurityEvent {
    NewSecurityEvent::now(user, kind, EventContext::default())
}

/// The ids of the active admins, from the first page of users.
async fn active_admins(store: &Store) -> Vec<UserId> {
    store
        .list_users(warden_domain::posts::Page::new(100, 0).unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter(|user| user.is_active && user.is_admin)
        .map(|user| user.id)
        .collect()
}

/// Every event of `user` of the last day, newest first.
async fn events_of(store: &Store, user: UserId) -> Vec<warden_domain::events::SecurityEvent> {
    store
        .list_events(&EventQuery {
            user_id: Some(user),
            kind: None,
            before: None,
            limit: EventLimit::new(200).unwrap(),
            since: Utc::now() - TimeDelta::days(1),
        })
        .await
        .unwrap()
}

async fn the_last_active_admin_is_never_demoted_disabled_or_deleted(store: Store) {
    let ann = Seed(&store).admin("ann").await;
    let bob = Seed(&store).user("bob").await;

    for flags in [demote(), disable()] {
        let events = [admin_event(ann.id, SecurityEventKind::AdminRevoked)];
        let err = store
            .update_user_flags(ann.id, flags, &events)
            .await
            .unwrap_err();
        assert!(matches!(err, UserChangeError::LastAdmin), "{err:?}");
    }
    let err = store.delete_user(ann.id).await.unwrap_err();
    assert!(matches!(err, UserChangeError::LastAdmin), "{err:?}");
    // Nothing changed, and nothing refused was recorded.
    assert_eq!(active_admins(&store).await, [ann.id]);
    assert!(events_of(&store, ann.id).await.is_empty());
    // What keeps her an active admin, and changes to others, go through.
    let kept = UserFlags {
        is_active: Some(true),
        is_admin: Some(true),
    };
    assert!(store.update_user_flags(ann.id, kept, &[]).await.is_ok());
    assert!(
        store
            .update_user_flags(bob.id, disable(), &[])
            .await
            .is_ok()
    );
    assert!(store.delete_user(bob.id).await.unwrap());

    // With a second active admin, either may go.
    let cy = Seed(&store).admin("cy").await;
    let demoted = store
        .update_user_flags(ann.id, demote(), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(!demoted.is_admin);
    let err = store.delete_user(cy.id).await.unwrap_err();
    assert!(matches!(err, UserChangeError::LastAdmin), "{err:?}");
    // A disabled admin is no active admin.
    let dee = Seed(&store).admin("dee").await;
    store
        .update_user_flags(dee.id, disable(), &[])
        .await
        .unwrap();
    let err = store
        .update_user_flags(cy.id, demote(), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, UserChangeError::LastAdmin), "{err:?}");
    assert_eq!(active_admins(&store).await, [cy.id]);
}

async fn two_admins_demoting_each_other_at_once_leave_exactly_one(store: Store) {
    let mut survivor: Option<UserId> = None;
    for round in 0..10 {
        let ann = Seed(&store).admin(&format!("ann{round}")).await;
        let bob = Seed(&store).admin(&format!("bob{round}")).await;
        // Only the two of them are active admins when they race.
        if let Some(previous) = survivor {
            store
                .update_user_flags(previous, demote(), &[])
                .await
                .unwrap();
        }
        // Demoting and disabling, both ways round.
        let (ann_flags, bob_flags) = if round % 2 == 0 {
            (demote(), demote())
        } else {
            (disable(), demote())
        };
        let racers = [(ann.id, ann_flags), (bob.id, bob_flags)].map(|(id, flags)| {
            let store = store.clone();
            tokio::spawn(async move { store.update_user_flags(id, flags, &[]).await })
        });
        let mut refused = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(Some(_)) => {}
                Err(UserChangeError::LastAdmin) => refused += 1,
                other => panic!("round {round}: {other:?}"),
            }
        }
        let admins = active_admins(&store).await;
        assert_eq!(refused, 1, "round {round}: exactly one change is refused");
        assert_eq!(admins.len(), 1, "round {round}: {admins:?}");
        survivor = Some(admins[0]);
    }
}

fn origin() -> SessionOrigin {
    SessionOrigin {
        client_id: ClientId::new("mobile-app").unwrap(),
        user_agent: Some("Warden/1.0".into()),
        ip_address: Some("192.0.2.7".parse().unwrap()),
        auth_methods: AuthMethods::Password,
    }
}

fn session_at(user: UserId, created_at: DateTime<Utc>, expires_in: TimeDelta) -> NewSession {
    NewSession {
        id: SessionId::random(),
        user_id: user,
        created_at,
        expires_at: created_at + expires_in,
        scopes: Scopes::parse("profile").unwrap(),
        origin: origin(),
    }
}

fn refresh(name: &str, expires_at: DateTime<Utc>) -> NewRefreshToken {
    NewRefreshToken {
        hash: SecretHash::new(format!("hash-of-{name}")),
        expires_at,
    }
}

/// Logs `user` in at `created_at` (for 30 days) under a cap of `cap` sessions, with first
/// refresh token `name`.
async fn login(
    store: &Store,
    user: UserId,
    created_at: DateTime<Utc>,
    cap: u32,
    name: &str,
) -> SessionId {
    let new = session_at(user, created_at, TimeDelta::days(30));
    store
        .create_session(
            &new,
            &refresh(name, created_at + TimeDelta::days(14)),
            cap,
            &[],
        )
        .await
        .unwrap();
    new.id
}

async fn active_sessions(store: &Store, user: UserId) -> Vec<SessionId> {
    store
        .list_active_sessions(user, Utc::now(), SessionPage::first())
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.id)
        .collect()
}

async fn a_login_past_the_cap_ends_the_least_recently_used_session(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let bob = Seed(&store).user("bob").await;
    let now = Utc::now();
    let minutes_ago = |minutes| now - TimeDelta::minutes(minutes);
    // Set up under a cap they do not reach: a login backdated to 40 days ago would count
    // the others as active then.
    let oldest = login(&store, ann.id, minutes_ago(30), 100, "oldest").await;
    let middle = login(&store, ann.id, minutes_ago(20), 100, "middle").await;
    let newest = login(&store, ann.id, minutes_ago(10), 100, "newest").await;
    // Neither an expired nor an ended session counts, nor someone else's.
    let expired = session_at(ann.id, now - TimeDelta::days(40), TimeDelta::days(30));
    store
        .create_session(&expired, &refresh("expired", now), 100, &[])
        .await
        .unwrap();
    let ended = login(&store, ann.id, minutes_ago(50), 100, "ended").await;
    store.revoke_session(ended, now, &[]).await.unwrap();
    login(&store, bob.id, minutes_ago(5), 3, "bobs").await;
    // The oldest login is the most recently used.
    store
        .record_session_use(oldest, minutes_ago(1))
        .await
        .unwrap();

    let login_event = |session| {
        NewSecurityEvent::now(
            ann.id,
            SecurityEventKind::Login,
            EventContext {
                ip_address: origin().ip_address,
                user_agent: origin().user_agent,
                session_id: Some(session),
            },
        )
    };
    let fourth = session_at(ann.id, Utc::now(), TimeDelta::days(30));
    store
        .create_session(
            &fourth,
            &refresh("fourth", now + TimeDelta::days(1)),
            3,
            &[login_event(fourth.id)],
        )
        .await
        .unwrap();

    assert_eq!(
        active_sessions(&store, ann.id).await,
        [fourth.id, newest, oldest]
    );
    let ended_now = store.find_session(middle).await.unwrap().unwrap();
    assert!(ended_now.revoked_at.is_some());
    // Its refresh token goes nowhere now: the session it would refresh has ended.
    let Rotation::Rotated(session) = store
        .rotate_refresh_token(
            &SecretHash::new("hash-of-middle".into()),
            &refresh("after-middle", now + TimeDelta::days(1)),
            Utc::now(),
        )
        .await
        .unwrap()
    else {
        panic!("an unspent token rotates; the session's end is what refuses it")
    };
    assert!(session.revoked_at.is_some());
    // The end is recorded, about the ended session, from where the new login came.
    let events = events_of(&store, ann.id).await;
    let revoked: Vec<_> = events
        .iter()
        .filter(|event| event.kind == SecurityEventKind::SessionRevoked)
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    assert_eq!(revoked[0].context.session_id, Some(middle));
    assert_eq!(revoked[0].context.ip_address, origin().ip_address);
    assert!(
        events
            .iter()
            .any(|event| event.kind == SecurityEventKind::Login)
    );
    // Bob's session is untouched.
    assert_eq!(active_sessions(&store, bob.id).await.len(), 1);

    // A lower cap ends as many as it takes.
    login(&store, ann.id, Utc::now(), 1, "alone").await;
    assert_eq!(active_sessions(&store, ann.id).await.len(), 1);
}

async fn concurrent_logins_never_leave_more_sessions_than_the_cap(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                login(&store, ann.id, Utc::now(), 3, &format!("racer-{i}")).await;
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    assert_eq!(active_sessions(&store, ann.id).await.len(), 3);
}

fn new_token(user: UserId, name: &str, created_at: DateTime<Utc>, days: i64) -> NewPersonalToken {
    NewPersonalToken {
        user_id: user,
        name: PersonalTokenName::new(name.into()).unwrap(),
        scopes: Scopes::parse("posts:read").unwrap(),
        hash: SecretHash::new(format!("hash-of-{name}")),
        created_at,
        expires_at: created_at + TimeDelta::days(days),
    }
}

async fn create_token(
    store: &Store,
    user: UserId,
    name: &str,
    cap: u32,
) -> Option<PersonalTokenId> {
    store
        .create_personal_token(&new_token(user, name, Utc::now(), 30), cap, &[])
        .await
        .unwrap()
        .map(|token| token.id)
}

async fn found(store: &Store, name: &str) -> bool {
    store
        .find_personal_token(&SecretHash::new(format!("hash-of-{name}")))
        .await
        .unwrap()
        .is_some()
}

async fn a_personal_token_past_the_cap_is_refused_and_only_live_ones_count(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let bob = Seed(&store).user("bob").await;
    let now = Utc::now();
    create_token(&store, ann.id, "one", 3).await.unwrap();
    let revoked = create_token(&store, ann.id, "revoked", 3).await.unwrap();
    store
        .revoke_personal_token(ann.id, revoked, now, &[])
        .await
        .unwrap();
    store
        .create_personal_token(
            &new_token(ann.id, "expired", now - TimeDelta::days(2), 1),
            3,
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    create_token(&store, bob.id, "bobs", 3).await.unwrap();
    create_token(&store, ann.id, "two", 3).await.unwrap();
    create_token(&store, ann.id, "three", 3).await.unwrap();

    let refused = [NewSecurityEvent::now(
        ann.id,
        SecurityEventKind::PersonalTokenCreated,
        EventContext::default(),
    )];
    let fourth = store
        .create_personal_token(&new_token(ann.id, "four", Utc::now(), 30), 3, &refused)
        .await
        .unwrap();

    assert!(fourth.is_none());
    assert!(!found(&store, "four").await, "nothing is stored");
    assert!(events_of(&store, ann.id).await.is_empty(), "nor recorded");
    // Revoking one makes room again.
    let listed = store
        .list_personal_tokens(ann.id, Utc::now(), PersonalTokenPage::first())
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    store
        .revoke_personal_token(ann.id, listed[0].id, Utc::now(), &[])
        .await
        .unwrap();
    assert!(create_token(&store, ann.id, "four", 3).await.is_some());
}

async fn concurrent_personal_tokens_never_exceed_the_cap(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { create_token(&store, ann.id, &format!("racer-{i}"), 4).await },
            )
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        created += usize::from(racer.await.unwrap().is_some());
    }
    assert_eq!(created, 4);
    let listed = store
        .list_personal_tokens(ann.id, Utc::now(), PersonalTokenPage::first())
        .await
        .unwrap();
    assert_eq!(listed.len(), 4);
}

async fn rotation(store: &Store, presented: &str, next: &str, at: DateTime<Utc>) -> Rotation {
    store
        .rotate_refresh_token(
            &SecretHash::new(format!("hash-of-{presented}")),
            &refresh(next, at + TimeDelta::days(200)),
            at,
        )
        .await
        .unwrap()
}

async fn pruning_deletes_sessions_and_refresh_tokens_that_ended_before_the_cutoff(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let now = Utc::now();
    let days_ago = |days| now - TimeDelta::days(days);
    // Ended 100 days ago, and expired 100 days ago: past a 90-day retention.
    let ended_long_ago = login(&store, ann.id, days_ago(120), 100, "ended-long-ago").await;
    store
        .revoke_session(ended_long_ago, days_ago(100), &[])
        .await
        .unwrap();
    let expired_long_ago = session_at(ann.id, days_ago(130), TimeDelta::days(30));
    store
        .create_session(
            &expired_long_ago,
            &refresh("expired-long-ago", days_ago(110)),
            100,
            &[],
        )
        .await
        .unwrap();
    // Ended yesterday, and expired yesterday: kept.
    let ended_lately = login(&store, ann.id, days_ago(20), 100, "ended-lately").await;
    store
        .revoke_session(ended_lately, days_ago(1), &[])
        .await
        .unwrap();
    let expired_lately = session_at(ann.id, days_ago(31), TimeDelta::days(30));
    store
        .create_session(
            &expired_lately,
            &refresh("expired-lately", days_ago(17)),
            100,
            &[],
        )
        .await
        .unwrap();
    // A live session refreshed 100 days ago and again yesterday: its first token was spent
    // (and expired) long ago, its second spent lately.
    let live = session_at(ann.id, days_ago(120), TimeDelta::days(365));
    store
        .create_session(&live, &refresh("first", days_ago(95)), 100, &[])
        .await
        .unwrap();
    assert!(matches!(
        rotation(&store, "first", "second", days_ago(100)).await,
        Rotation::Rotated(_)
    ));
    assert!(matches!(
        rotation(&store, "second", "third", days_ago(1)).await,
        Rotation::Rotated(_)
    ));

    let deleted = store
        .delete_sessions_ended_before(days_ago(90))
        .await
        .unwrap();

    // Two sessions (with their two refresh tokens, by the cascade), and one spent token.
    assert_eq!(deleted, 3);
    for gone in [ended_long_ago, expired_long_ago.id] {
        assert!(store.find_session(gone).await.unwrap().is_none());
    }
    for kept in [ended_lately, expired_lately.id, live.id] {
        assert!(store.find_session(kept).await.unwrap().is_some());
    }
    // The token spent long ago is forgotten, so no longer a replay; the one spent lately
    // still is; the live one still rotates.
    assert!(matches!(
        rotation(&store, "first", "x", now).await,
        Rotation::Invalid
    ));
    assert!(matches!(
        rotation(&store, "second", "y", now).await,
        Rotation::Replayed(id) if id == live.id
    ));
    assert!(matches!(
        rotation(&store, "third", "fourth", now).await,
        Rotation::Rotated(_)
    ));
    for gone in ["ended-long-ago", "expired-long-ago"] {
        let hash = SecretHash::new(format!("hash-of-{gone}"));
        assert!(
            store
                .find_session_by_refresh_token(&hash)
                .await
                .unwrap()
                .is_none()
        );
    }
    // Nothing is left to prune.
    assert_eq!(
        store
            .delete_sessions_ended_before(days_ago(90))
            .await
            .unwrap(),
        0
    );
}

async fn pruning_deletes_personal_tokens_revoked_or_expired_before_the_cutoff(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let now = Utc::now();
    let days_ago = |days| now - TimeDelta::days(days);
    let create = |name: &'static str, created_days_ago: i64, lifetime: i64| {
        let store = store.clone();
        async move {
            store
                .create_personal_token(
                    &new_token(ann.id, name, days_ago(created_days_ago), lifetime),
                    50,
                    &[],
                )
                .await
                .unwrap()
                .unwrap()
                .id
        }
    };
    let revoked_long_ago = create("revoked-long-ago", 200, 365).await;
    store
        .revoke_personal_token(ann.id, revoked_long_ago, days_ago(100), &[])
        .await
        .unwrap();
    create("expired-long-ago", 200, 100).await;
    let revoked_lately = create("revoked-lately", 200, 365).await;
    store
        .revoke_personal_token(ann.id, revoked_lately, days_ago(1), &[])
        .await
        .unwrap();
    create("expired-lately", 31, 30).await;
    create("live", 200, 365).await;

    let deleted = store
        .delete_personal_tokens_ended_before(days_ago(90))
        .await
        .unwrap();

    assert_eq!(deleted, 2);
    for (name, kept) in [
        ("revoked-long-ago", false),
        ("expired-long-ago", false),
        ("revoked-lately", true),
        ("expired-lately", true),
        ("live", true),
    ] {
        assert_eq!(found(&store, name).await, kept, "{name}");
    }
}

fn page(limit: i64) -> EventLimit {
    EventLimit::new(limit).unwrap()
}

async fn sessions_page_newest_first_in_disjoint_pages(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let bob = Seed(&store).user("bob").await;
    let now = Utc::now();
    for minutes in [5, 1, 4, 2] {
        login(
            &store,
            ann.id,
            now - TimeDelta::minutes(minutes),
            100,
            &format!("m{minutes}"),
        )
        .await;
    }
    // Three logins at the same instant: the list orders them by id.
    for i in 0..3 {
        login(
            &store,
            ann.id,
            now - TimeDelta::minutes(3),
            100,
            &format!("tie{i}"),
        )
        .await;
    }
    login(&store, bob.id, now, 100, "bobs").await;
    let whole = active_sessions(&store, ann.id).await;
    assert_eq!(whole.len(), 7);

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let next = store
            .list_active_sessions(
                ann.id,
                Utc::now(),
                SessionPage {
                    before,
                    limit: page(2),
                },
            )
            .await
            .unwrap();
        assert!(next.len() <= 2);
        let Some(last) = next.last() else { break };
        before = Some(last.id);
        paged.extend(next.iter().map(|session| session.id));
    }

    assert_eq!(paged, whole, "the pages, in order, are the whole list");
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), 7, "disjoint");
    let listed = store
        .list_active_sessions(ann.id, Utc::now(), SessionPage::first())
        .await
        .unwrap();
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].created_at >= pair[1].created_at),
        "newest first"
    );
    // An id that is none of Ann's sessions gives nothing.
    let bobs = active_sessions(&store, bob.id).await[0];
    for stranger in [bobs, SessionId::random()] {
        let none = store
            .list_active_sessions(
                ann.id,
                Utc::now(),
                SessionPage {
                    before: Some(stranger),
                    limit: page(200),
                },
            )
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}

async fn personal_tokens_page_newest_first_in_disjoint_pages(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            create_token(&store, ann.id, &format!("t{i}"), 50)
                .await
                .unwrap(),
        );
    }
    created.push(create_token(&store, ann.id, "six", 50).await.unwrap());
    let revoked = created.remove(2);
    store
        .revoke_personal_token(ann.id, revoked, Utc::now(), &[])
        .await
        .unwrap();

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let next = store
            .list_personal_tokens(
                ann.id,
                Utc::now(),
                PersonalTokenPage {
                    before,
                    limit: page(2),
                },
            )
            .await
            .unwrap();
        assert!(next.len() <= 2);
        let Some(last) = next.last() else { break };
        before = Some(last.id);
        paged.extend(next.iter().map(|token| token.id));
    }

    created.reverse();
    assert_eq!(paged, created, "newest first, each live token once");
}
