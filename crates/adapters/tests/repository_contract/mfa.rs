//! Multi-factor authentication: factors, code steps, recovery codes and challenges.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    a_pending_factor_is_replaced_until_a_code_confirms_it,
    each_code_step_is_accepted_once_and_never_an_older_one,
    recovery_codes_are_single_use_and_replaced_as_a_set,
    an_mfa_challenge_is_spent_once_and_tried_at_most_five_times_even_racing,
);

fn codes(names: &[&str]) -> Vec<warden_domain::mfa::RecoveryCodeHash> {
    names
        .iter()
        .map(|name| warden_domain::mfa::RecoveryCodeHash::new(format!("hash-of-{name}")))
        .collect()
}

fn sealed(name: &str) -> warden_domain::mfa::SealedTotpSecret {
    warden_domain::mfa::SealedTotpSecret::new(format!("v1.{name}"))
}

/// How many of 8 concurrent runs of `attempt` report success.
async fn winners<F, Fut>(store: &Store, attempt: F) -> usize
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let racers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(attempt(store.clone())))
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    won
}

/// Ann, with a TOTP factor confirmed at step 100 and recovery codes `one` and `two`.
async fn with_confirmed_factor(store: &Store) -> UserId {
    let ann = Seed(store).user("ann").await;
    assert!(
        store
            .save_pending_totp(ann.id, &sealed("a"), Utc::now())
            .await
            .unwrap()
    );
    assert!(
        store
            .confirm_totp(ann.id, 100, &codes(&["one", "two"]), Utc::now(), &[])
            .await
            .unwrap()
    );
    ann.id
}

async fn a_pending_factor_is_replaced_until_a_code_confirms_it(store: Store) {
    let ann = Seed(&store).user("ann").await;
    assert_eq!(store.find_totp(ann.id).await.unwrap(), None);
    assert!(
        store
            .save_pending_totp(ann.id, &sealed("a"), Utc::now())
            .await
            .unwrap()
    );
    assert!(
        store
            .save_pending_totp(ann.id, &sealed("b"), Utc::now())
            .await
            .unwrap()
    );
    let pending = store.find_totp(ann.id).await.unwrap().unwrap();
    assert_eq!(pending.secret, sealed("b"));
    assert!(!pending.is_confirmed());

    let enabled = [event(ann.id, SecurityEventKind::MfaEnabled, None)];
    let at = Utc::now();
    assert!(
        store
            .confirm_totp(ann.id, 100, &codes(&["one"]), at, &enabled)
            .await
            .unwrap()
    );
    let confirmed = store.find_totp(ann.id).await.unwrap().unwrap();
    assert_eq!(
        confirmed.confirmed_at.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros())
    );
    assert_eq!(confirmed.last_used_step, Some(100));
    assert_eq!(confirmed.secret, sealed("b"));
    // A confirmed factor is neither replaced nor confirmed again.
    assert!(
        !store
            .save_pending_totp(ann.id, &sealed("c"), Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .confirm_totp(ann.id, 200, &codes(&["x"]), Utc::now(), &enabled)
            .await
            .unwrap()
    );
    assert_eq!(
        store.find_totp(ann.id).await.unwrap().unwrap().secret,
        sealed("b")
    );
    assert_eq!(
        kinds(&events_of(&store, Some(ann.id)).await),
        [SecurityEventKind::MfaEnabled]
    );
    // The factor goes with the account.
    store.delete_user(ann.id).await.unwrap();
    assert_eq!(store.find_totp(ann.id).await.unwrap(), None);
}

async fn each_code_step_is_accepted_once_and_never_an_older_one(store: Store) {
    let ann = with_confirmed_factor(&store).await;
    // The confirming code's step is spent.
    assert!(!store.use_totp_step(ann, 100).await.unwrap());
    assert!(store.use_totp_step(ann, 101).await.unwrap());
    assert!(!store.use_totp_step(ann, 101).await.unwrap());
    assert!(!store.use_totp_step(ann, 100).await.unwrap());
    // Racing uses of one step: exactly one wins.
    let won = winners(&store, |store| async move {
        store.use_totp_step(ann, 102).await.unwrap()
    })
    .await;
    assert_eq!(won, 1);
    // No factor, no step.
    let bob = Seed(&store).user("bob").await;
    assert!(!store.use_totp_step(bob.id, 500).await.unwrap());
    store
        .save_pending_totp(bob.id, &sealed("p"), Utc::now())
        .await
        .unwrap();
    assert!(!store.use_totp_step(bob.id, 500).await.unwrap(), "pending");
}

async fn recovery_codes_are_single_use_and_replaced_as_a_set(store: Store) {
    let ann = with_confirmed_factor(&store).await;
    let one = &codes(&["one"])[0];
    let used = [event(ann, SecurityEventKind::RecoveryCodeUsed, None)];
    assert!(
        store
            .use_recovery_code(ann, one, Utc::now(), &used)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(ann, one, Utc::now(), &used)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(ann, &codes(&["nope"])[0], Utc::now(), &used)
            .await
            .unwrap()
    );
    // Racing uses of one code: exactly one wins.
    let two = codes(&["two"])[0].clone();
    let won = winners(&store, |store| {
        let two = two.clone();
        async move {
            store
                .use_recovery_code(ann, &two, Utc::now(), &[])
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(won, 1);
    // A new set replaces the old one whole.
    assert!(
        store
            .replace_recovery_codes(ann, &codes(&["three"]))
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(ann, &two, Utc::now(), &[])
            .await
            .unwrap()
    );
    let bob = Seed(&store).user("bob").await;
    assert!(
        !store
            .replace_recovery_codes(bob.id, &codes(&["x"]))
            .await
            .unwrap()
    );
    // Removing the factor removes the codes; only a confirmed factor's removal is recorded.
    let disabled = [event(ann, SecurityEventKind::MfaDisabled, None)];
    assert!(store.remove_totp(ann, &disabled).await.unwrap());
    assert!(!store.remove_totp(ann, &disabled).await.unwrap());
    assert!(
        !store
            .use_recovery_code(ann, &codes(&["three"])[0], Utc::now(), &[])
            .await
            .unwrap()
    );
    store
        .save_pending_totp(bob.id, &sealed("p"), Utc::now())
        .await
        .unwrap();
    assert!(!store.remove_totp(bob.id, &disabled).await.unwrap());
    assert_eq!(store.find_totp(bob.id).await.unwrap(), None);
    assert_eq!(
        kinds(&events_of(&store, None).await),
        [
            SecurityEventKind::MfaDisabled,
            SecurityEventKind::RecoveryCodeUsed
        ]
    );
}

async fn an_mfa_challenge_is_spent_once_and_tried_at_most_five_times_even_racing(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let now = Utc::now();
    let challenge = |name: &str, expires_at| warden_domain::mfa::MfaChallenge {
        token_hash: SecretHash::new(format!("hash-of-{name}")),
        user_id: ann.id,
        scopes: Scopes::parse("profile posts:read").unwrap(),
        client_id: ClientId::new("cli").unwrap(),
        created_at: now,
        expires_at,
        failures: 0,
        spent_at: None,
    };
    let live = challenge("live", now + TimeDelta::minutes(5));
    store.create_mfa_challenge(&live).await.unwrap();
    let mut found = store
        .find_mfa_challenge(&live.token_hash)
        .await
        .unwrap()
        .unwrap();
    found.created_at = live.created_at;
    found.expires_at = live.expires_at;
    assert_eq!(found, live);
    assert!(
        store
            .spend_mfa_challenge(&live.token_hash, Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .spend_mfa_challenge(&live.token_hash, Utc::now())
            .await
            .unwrap()
    );
    assert!(
        store
            .find_mfa_challenge(&live.token_hash)
            .await
            .unwrap()
            .unwrap()
            .spent_at
            .is_some()
    );

    let failing = challenge("failing", now + TimeDelta::minutes(5));
    store.create_mfa_challenge(&failing).await.unwrap();
    // 20 racing tries: five pass, whichever they are.
    let tries = (0..20).map(|_| {
        let (store, hash) = (store.clone(), failing.token_hash.clone());
        tokio::spawn(async move { store.try_mfa_challenge(&hash, Utc::now()).await.unwrap() })
    });
    let mut passed = 0;
    for tried in tries {
        passed += usize::from(tried.await.unwrap());
    }
    assert_eq!(passed, 5);
    let failed = store
        .find_mfa_challenge(&failing.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.failures, 5);
    assert!(!failed.is_live_at(Utc::now()));
    assert!(
        !store
            .try_mfa_challenge(&failing.token_hash, Utc::now())
            .await
            .unwrap()
    );
    // A spent or expired challenge is tried no more.
    assert!(
        !store
            .try_mfa_challenge(&live.token_hash, Utc::now())
            .await
            .unwrap()
    );

    let expired = challenge("expired", now - TimeDelta::seconds(1));
    store.create_mfa_challenge(&expired).await.unwrap();
    assert!(
        !store
            .try_mfa_challenge(&expired.token_hash, Utc::now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .spend_mfa_challenge(&expired.token_hash, Utc::now())
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .delete_expired_mfa_challenges(Utc::now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.find_mfa_challenge(&expired.token_hash).await.unwrap(),
        None
    );
    assert!(
        store
            .find_mfa_challenge(&SecretHash::new("hash-of-unknown".into()))
            .await
            .unwrap()
            .is_none()
    );
}
