//! Sessions: opening, reading, refresh-token rotation, revocation and listing.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    a_created_session_can_be_found,
    a_missing_session_is_none,
    a_session_is_read_with_its_user_as_the_user_is_now,
    a_session_needs_an_existing_user,
    timestamps_round_trip_exactly,
    sessions_remember_their_scopes,
    a_refresh_token_rotates_once_and_a_replay_is_reported,
    unknown_and_expired_refresh_tokens_are_invalid,
    concurrent_rotations_of_one_token_let_exactly_one_through,
    a_session_is_revoked_once,
    all_sessions_of_a_user_but_one_are_revoked,
    a_sessions_origin_round_trips,
    active_sessions_are_listed_newest_first_without_ended_or_expired_ones,
    a_session_is_revoked_only_for_its_own_active_user,
    a_sessions_use_moves_forward_only_and_a_refresh_is_a_use,
);

fn session_created_at(user_id: UserId, created_at: chrono::DateTime<Utc>) -> NewSession {
    NewSession {
        created_at,
        expires_at: created_at + TimeDelta::days(30),
        ..new_session(user_id)
    }
}

/// Opens a session for `user` that expired a second before `now`.
async fn expired_session(store: &Store, user: UserId, now: chrono::DateTime<Utc>) -> SessionId {
    let expired = NewSession {
        expires_at: now - TimeDelta::seconds(1),
        ..session_created_at(user, now - TimeDelta::days(31))
    };
    store
        .create_session(
            &expired,
            &refresh_token("expired", TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();
    expired.id
}

async fn a_created_session_can_be_found(store: Store) {
    let user = Seed(&store).user("ann").await;
    let new = new_session(user.id);

    let created = store
        .create_session(
            &new,
            &refresh_token("first", TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();
    let found = store.find_session(new.id).await.unwrap().unwrap();

    assert_eq!(found, created);
    assert_eq!(found.id, new.id);
    assert_eq!(found.user_id, user.id);
    assert_eq!(found.revoked_at, None);
    assert!(found.is_active_at(Utc::now()));
}

async fn a_session_is_read_with_its_user_as_the_user_is_now(store: Store) {
    let user = Seed(&store).user("ann").await;
    let new = new_session(user.id);
    let created = store
        .create_session(
            &new,
            &refresh_token("first", TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();

    let (session, found) = store.find_session_with_user(new.id).await.unwrap().unwrap();
    assert_eq!(session, created);
    assert_eq!(found, user);

    let flags = UserFlags {
        is_active: Some(false),
        is_admin: Some(true),
    };
    store.update_user_flags(user.id, flags, &[]).await.unwrap();
    let (_, found) = store.find_session_with_user(new.id).await.unwrap().unwrap();
    assert!(!found.is_active);
    assert!(found.is_admin);

    store.delete_user(user.id).await.unwrap();
    assert_eq!(store.find_session_with_user(new.id).await.unwrap(), None);
    assert_eq!(
        store
            .find_session_with_user(SessionId::random())
            .await
            .unwrap(),
        None
    );
}

async fn a_missing_session_is_none(store: Store) {
    assert_eq!(store.find_session(SessionId::random()).await.unwrap(), None);
}

async fn a_session_needs_an_existing_user(store: Store) {
    let result = store
        .create_session(
            &new_session(UserId::new(4242)),
            &refresh_token("first", TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await;
    assert!(result.is_err(), "a session of no user was stored");
    // Nothing half-written is left behind.
    assert!(store.find_user(UserId::new(4242)).await.unwrap().is_none());
}

async fn timestamps_round_trip_exactly(store: Store) {
    let user = Seed(&store).user("ann").await;
    let new = new_session(user.id);
    store
        .create_session(
            &new,
            &refresh_token("first", TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();

    let found = store.find_session(new.id).await.unwrap().unwrap();

    // Both databases keep microseconds.
    let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros();
    assert_eq!(micros(found.created_at), micros(new.created_at));
    assert_eq!(micros(found.expires_at), micros(new.expires_at));
    assert_eq!(
        store.find_user(user.id).await.unwrap().unwrap().created_at,
        user.created_at
    );
}

async fn sessions_remember_their_scopes(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let id = seed.session(&ann, "first").await;
    let found = store.find_session(id).await.unwrap().unwrap();
    assert_eq!(found.scopes.to_string(), "profile posts:read");
}

async fn a_refresh_token_rotates_once_and_a_replay_is_reported(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let id = seed.session(&ann, "first").await;
    let first = SecretHash::new("hash-of-first".into());

    let rotated = rotate(&store, "first", "second").await;
    let Rotation::Rotated(session) = rotated else {
        panic!("not rotated: {rotated:?}");
    };
    assert_eq!(session.id, id);
    assert_eq!(session.scopes.to_string(), "profile posts:read");

    // The spent token still names its session.
    let by_token = store
        .find_session_by_refresh_token(&first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_token.id, id);
    let nothing = SecretHash::new("hash-of-nothing".into());
    assert_eq!(
        store.find_session_by_refresh_token(&nothing).await.unwrap(),
        None
    );

    // The spent token again: a replay, naming the session.
    let again = rotate(&store, "first", "third").await;
    assert_eq!(again, Rotation::Replayed(id));

    // The next token works, once.
    let next = rotate(&store, "second", "fourth").await;
    assert!(matches!(next, Rotation::Rotated(_)), "{next:?}");
}

async fn unknown_and_expired_refresh_tokens_are_invalid(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let new = new_session(ann.id);
    store
        .create_session(
            &new,
            &refresh_token("stale", TimeDelta::seconds(-1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();

    assert_eq!(rotate(&store, "nothing", "next").await, Rotation::Invalid);
    assert_eq!(rotate(&store, "stale", "next").await, Rotation::Invalid);
    // Refusing it did not spend it: presenting it again is not taken for a replay.
    assert_eq!(rotate(&store, "stale", "next").await, Rotation::Invalid);
    // Nor was the next token stored.
    assert_eq!(rotate(&store, "next", "after").await, Rotation::Invalid);
}

async fn concurrent_rotations_of_one_token_let_exactly_one_through(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let id = seed.session(&ann, "contested").await;

    let attempts: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let presented = SecretHash::new("hash-of-contested".into());
                let next = refresh_token(&format!("next-{i}"), TimeDelta::days(1));
                store
                    .rotate_refresh_token(&presented, &next, Utc::now())
                    .await
            })
        })
        .collect();
    let mut rotated = 0;
    let mut replayed = 0;
    for attempt in attempts {
        match attempt.await.unwrap().unwrap() {
            Rotation::Rotated(session) => {
                assert_eq!(session.id, id);
                rotated += 1;
            }
            Rotation::Replayed(session) => {
                assert_eq!(session, id);
                replayed += 1;
            }
            Rotation::Invalid => panic!("a racing rotation saw an invalid token"),
        }
    }
    assert_eq!((rotated, replayed), (1, 15));
}

async fn a_session_is_revoked_once(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let id = seed.session(&ann, "first").await;
    let at = Utc::now();

    assert!(store.revoke_session(id, at, &[]).await.unwrap());
    assert!(
        !store.revoke_session(id, Utc::now(), &[]).await.unwrap(),
        "revoked twice"
    );

    let found = store.find_session(id).await.unwrap().unwrap();
    assert_eq!(
        found.revoked_at.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros())
    );
    assert!(!found.is_active_at(Utc::now()));
    assert!(
        !store
            .revoke_session(SessionId::random(), Utc::now(), &[])
            .await
            .unwrap()
    );
}

async fn all_sessions_of_a_user_but_one_are_revoked(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let keep = seed.session(&ann, "a1").await;
    let end1 = seed.session(&ann, "a2").await;
    let end2 = seed.session(&ann, "a3").await;
    let bobs = seed.session(&bob, "b1").await;

    assert_eq!(
        store
            .revoke_sessions_of_user(ann.id, Some(keep), Utc::now(), &[])
            .await
            .unwrap(),
        2
    );

    let active = |id| {
        let store = store.clone();
        async move {
            store
                .find_session(id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        }
    };
    assert!(active(keep).await);
    assert!(!active(end1).await);
    assert!(!active(end2).await);
    assert!(active(bobs).await);

    assert_eq!(
        store
            .revoke_sessions_of_user(ann.id, None, Utc::now(), &[])
            .await
            .unwrap(),
        1
    );
    assert!(!active(keep).await);
}

async fn a_sessions_origin_round_trips(store: Store) {
    let ann = Seed(&store).user("ann").await;
    for origin in [
        new_session(ann.id).origin,
        SessionOrigin::default(),
        SessionOrigin {
            client_id: ClientId::new(&"~".repeat(64)).unwrap(),
            user_agent: SessionOrigin::user_agent(&"Ünïcödé ".repeat(40)),
            ip_address: Some("192.0.2.255".parse().unwrap()),
            auth_methods: AuthMethods::PasswordAndOtp,
        },
    ] {
        let new = NewSession {
            origin: origin.clone(),
            ..new_session(ann.id)
        };
        let created = store
            .create_session(
                &new,
                &refresh_token(&new.id.to_string(), TimeDelta::days(1)),
                MAX_SESSIONS,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(created.origin, origin);
        assert_eq!(created.last_used_at, stored_now_of(&new));
        let found = store.find_session(new.id).await.unwrap().unwrap();
        assert_eq!(found, created);
        let (with_user, _) = store.find_session_with_user(new.id).await.unwrap().unwrap();
        assert_eq!(with_user, created);
    }
}

/// The creation time of `new` as stored (microseconds).
fn stored_now_of(new: &NewSession) -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    new.created_at.trunc_subsecs(6)
}

async fn active_sessions_are_listed_newest_first_without_ended_or_expired_ones(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for minutes_ago in [30, 10, 20, 40] {
        let new = session_created_at(ann.id, now - TimeDelta::minutes(minutes_ago));
        store
            .create_session(
                &new,
                &refresh_token(&new.id.to_string(), TimeDelta::days(1)),
                MAX_SESSIONS,
                &[],
            )
            .await
            .unwrap();
        ids.push(new.id);
    }
    expired_session(&store, ann.id, now).await;
    store.revoke_session(ids[3], now, &[]).await.unwrap();
    seed.session(&bob, "bobs").await;

    let listed: Vec<SessionId> = store
        .list_active_sessions(ann.id, Utc::now(), SessionPage::first())
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.id)
        .collect();

    assert_eq!(listed, vec![ids[1], ids[2], ids[0]]);
}

async fn a_session_is_revoked_only_for_its_own_active_user(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let annes = seed.session(&ann, "a1").await;
    let now = Utc::now();

    // Bob cannot end Ann's session; an unknown id ends nothing.
    assert!(
        !store
            .revoke_session_of_user(bob.id, annes, now, &[])
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_session_of_user(ann.id, SessionId::random(), now, &[])
            .await
            .unwrap()
    );
    assert!(
        store
            .find_session(annes)
            .await
            .unwrap()
            .unwrap()
            .is_active_at(now)
    );

    // Ann can, once.
    assert!(
        store
            .revoke_session_of_user(ann.id, annes, now, &[])
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_session_of_user(ann.id, annes, now, &[])
            .await
            .unwrap()
    );
    assert!(
        !store
            .find_session(annes)
            .await
            .unwrap()
            .unwrap()
            .is_active_at(now)
    );

    // An expired session is ended already.
    let expired = expired_session(&store, ann.id, now).await;
    assert!(
        !store
            .revoke_session_of_user(ann.id, expired, now, &[])
            .await
            .unwrap()
    );
}

async fn a_sessions_use_moves_forward_only_and_a_refresh_is_a_use(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let new = session_created_at(ann.id, Utc::now() - TimeDelta::minutes(10));
    let id = new.id;
    let created = store
        .create_session(
            &new,
            &refresh_token("first", TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();

    let later = created.created_at + TimeDelta::minutes(5);
    store.record_session_use(id, later).await.unwrap();
    assert_eq!(
        store.find_session(id).await.unwrap().unwrap().last_used_at,
        later
    );
    // An earlier use, recorded late by a slower instance, does not move it back.
    store
        .record_session_use(id, later - TimeDelta::minutes(2))
        .await
        .unwrap();
    assert_eq!(
        store.find_session(id).await.unwrap().unwrap().last_used_at,
        later
    );

    let Rotation::Rotated(session) = rotate(&store, "first", "second").await else {
        panic!("not rotated");
    };
    assert!(session.last_used_at > later, "{session:?}");
    assert_eq!(
        store.find_session(id).await.unwrap().unwrap().last_used_at,
        session.last_used_at
    );
}

/// During a rolling upgrade, instances of the previous release insert sessions without the
/// columns added since (client, user agent, address, `amr`, last use); this release reads them
/// with their defaults.
async fn a_session_inserted_by_the_previous_release_is_read_with_defaults(
    db: &warden_adapters::testing::TestDb,
) {
    const OLD_INSERT: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, scopes) \
                              VALUES ($1, $2, $3, $4, $5)";
    let store = db.store();
    let ann = Seed(&store).user("ann").await;
    let new = new_session(ann.id);
    let created_at = {
        use chrono::SubsecRound;
        new.created_at.trunc_subsecs(6)
    };
    // The same statement on either database's own pool type.
    macro_rules! old_insert {
        ($pool:expr) => {{
            let pool = $pool;
            sqlx::query(OLD_INSERT)
                .bind(new.id.as_uuid())
                .bind(ann.id.get())
                .bind(created_at)
                .bind(new.expires_at)
                .bind("profile")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }};
    }
    let url = db.url();
    if url.starts_with("sqlite:") {
        old_insert!(sqlx::SqlitePool::connect(url).await.unwrap());
    } else {
        old_insert!(sqlx::PgPool::connect(url).await.unwrap());
    }
    let found = store.find_session(new.id).await.unwrap().unwrap();
    assert_eq!(found.origin, SessionOrigin::default());
    assert!(
        (found.last_used_at - created_at).num_seconds().abs() < 60,
        "{found:?}"
    );
    let listed = store
        .list_active_sessions(ann.id, Utc::now(), SessionPage::first())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn sqlite_reads_a_session_inserted_by_the_previous_release() {
    let db = warden_adapters::testing::TestDb::sqlite().await;
    a_session_inserted_by_the_previous_release_is_read_with_defaults(&db).await;
}

#[tokio::test]
async fn postgres_reads_a_session_inserted_by_the_previous_release() {
    let db = warden_adapters::testing::TestDb::postgres().await;
    a_session_inserted_by_the_previous_release_is_read_with_defaults(&db).await;
}
