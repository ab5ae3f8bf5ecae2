//! Personal access tokens: found by hash, listed, revoked.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    personal_tokens_are_found_by_hash_with_their_user_listed_live_and_revoked_once,
);

fn new_token(
    user: UserId,
    name: &str,
    expires_in: TimeDelta,
) -> warden_domain::personal_tokens::NewPersonalToken {
    let now = Utc::now();
    warden_domain::personal_tokens::NewPersonalToken {
        user_id: user,
        name: warden_domain::personal_tokens::PersonalTokenName::new(name.into()).unwrap(),
        scopes: Scopes::parse("profile posts:read").unwrap(),
        hash: SecretHash::new(format!("hash-of-{name}")),
        created_at: now,
        expires_at: now + expires_in,
    }
}

async fn personal_tokens_are_found_by_hash_with_their_user_listed_live_and_revoked_once(
    store: Store,
) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let created = [event(ann.id, SecurityEventKind::PersonalTokenCreated, None)];
    let ci = store
        .create_personal_token(
            &new_token(ann.id, "ci", TimeDelta::days(30)),
            MAX_TOKENS,
            &created,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ci.name.as_str(), "ci");
    assert_eq!(ci.scopes, Scopes::parse("profile posts:read").unwrap());
    assert_eq!(ci.last_used_at, None);
    let old = store
        .create_personal_token(
            &new_token(ann.id, "old", -TimeDelta::seconds(1)),
            MAX_TOKENS,
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    let newer = store
        .create_personal_token(
            &new_token(ann.id, "newer", TimeDelta::days(1)),
            MAX_TOKENS,
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    // A hash is stored once.
    assert!(
        store
            .create_personal_token(
                &new_token(bob.id, "ci", TimeDelta::days(1)),
                MAX_TOKENS,
                &[]
            )
            .await
            .is_err()
    );

    let (found, owner) = store
        .find_personal_token(&SecretHash::new("hash-of-ci".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, ci);
    assert_eq!(owner.id, ann.id);
    assert!(
        store
            .find_personal_token(&SecretHash::new("hash-of-nothing".into()))
            .await
            .unwrap()
            .is_none()
    );
    let listed = store
        .list_personal_tokens(ann.id, Utc::now(), PersonalTokenPage::first())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [newer.id, ci.id],
        "newest first, without the expired one ({:?})",
        old.id
    );

    let at = Utc::now();
    store.record_personal_token_use(ci.id, at).await.unwrap();
    store
        .record_personal_token_use(ci.id, at - TimeDelta::seconds(5))
        .await
        .unwrap();
    let used = store
        .list_personal_tokens(ann.id, Utc::now(), PersonalTokenPage::first())
        .await
        .unwrap();
    assert_eq!(
        used[1].last_used_at.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros()),
        "never moved back"
    );

    let revoked = [event(ann.id, SecurityEventKind::PersonalTokenRevoked, None)];
    assert!(
        !store
            .revoke_personal_token(bob.id, ci.id, Utc::now(), &revoked)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_personal_token(ann.id, ci.id, Utc::now(), &revoked)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_personal_token(ann.id, ci.id, Utc::now(), &revoked)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .list_personal_tokens(ann.id, Utc::now(), PersonalTokenPage::first())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        kinds(&events_of(&store, Some(ann.id)).await),
        [
            SecurityEventKind::PersonalTokenRevoked,
            SecurityEventKind::PersonalTokenCreated
        ]
    );
    // Tokens go with the account.
    store.delete_user(ann.id).await.unwrap();
    assert!(
        store
            .find_personal_token(&SecretHash::new("hash-of-newer".into()))
            .await
            .unwrap()
            .is_none()
    );
}
