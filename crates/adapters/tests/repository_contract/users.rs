//! Users: creating, finding, listing, changing and deleting accounts.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    a_created_user_can_be_found_by_id_and_email,
    created_users_are_active_non_admins_with_increasing_ids,
    emails_are_unique_case_insensitively,
    a_missing_user_is_none,
    email_lookup_ignores_case_but_keeps_the_stored_spelling,
    users_are_created_as_admins_when_asked,
    credentials_are_found_by_id,
    users_are_listed_in_pages_by_id,
    emails_change_unless_taken,
    passwords_and_flags_change,
    deleting_a_user_deletes_their_sessions_posts_and_votes,
);

async fn a_created_user_can_be_found_by_id_and_email(store: Store) {
    let created = store
        .create_user(&new_user("ann@example.com"))
        .await
        .unwrap();

    let by_id = store.find_user(created.id).await.unwrap().unwrap();
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
    let first = store
        .create_user(&new_user("ann@example.com"))
        .await
        .unwrap();
    let second = store
        .create_user(&new_user("bob@example.com"))
        .await
        .unwrap();

    assert!(first.is_active && !first.is_admin);
    assert!(second.id.get() > first.id.get());
    assert!((Utc::now() - first.created_at) < TimeDelta::minutes(1));
}

async fn emails_are_unique_case_insensitively(store: Store) {
    store
        .create_user(&new_user("ann@example.com"))
        .await
        .unwrap();

    let err = store
        .create_user(&new_user("ANN@Example.com"))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, SaveUserError::Duplicate { email } if email == "ANN@Example.com"),
        "{err:?}"
    );
}

async fn a_missing_user_is_none(store: Store) {
    assert_eq!(store.find_user(UserId::new(4242)).await.unwrap(), None);
    let nobody = EmailAddress::new("nobody@example.com").unwrap();
    assert_eq!(
        store.find_credentials_by_email(&nobody).await.unwrap(),
        None
    );
}

async fn email_lookup_ignores_case_but_keeps_the_stored_spelling(store: Store) {
    store
        .create_user(&new_user("Ann.Smith@Example.com"))
        .await
        .unwrap();

    let found = store
        .find_credentials_by_email(&EmailAddress::new("ann.smith@EXAMPLE.COM").unwrap())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(found.user.email.as_str(), "Ann.Smith@Example.com");
}

async fn users_are_created_as_admins_when_asked(store: Store) {
    let mut admin = new_user("root@example.com");
    admin.is_admin = true;
    let created = store.create_user(&admin).await.unwrap();
    assert!(created.is_admin && created.is_active);
}

async fn credentials_are_found_by_id(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let credentials = store.find_credentials_by_id(ann.id).await.unwrap().unwrap();
    assert_eq!(credentials.user, ann);
    assert_eq!(
        credentials.password_hash.as_str(),
        "$argon2id$hash-of-ann@example.com"
    );
    assert_eq!(
        store
            .find_credentials_by_id(UserId::new(4242))
            .await
            .unwrap(),
        None
    );
}

async fn users_are_listed_in_pages_by_id(store: Store) {
    let mut ids = Vec::new();
    for name in ["a", "b", "c", "d"] {
        ids.push(Seed(&store).user(name).await.id);
    }
    let page: Vec<UserId> = store
        .list_users(Page::new(2, 1).unwrap())
        .await
        .unwrap()
        .into_iter()
        .map(|user| user.id)
        .collect();
    assert_eq!(page, ids[1..3]);
    assert!(
        store
            .list_users(Page::new(2, 9).unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn emails_change_unless_taken(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    seed.user("bob").await;

    let changed = store
        .update_email(ann.id, &EmailAddress::new("Ann@New.example").unwrap(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.email.as_str(), "Ann@New.example");
    let found = store
        .find_credentials_by_email(&EmailAddress::new("ann@new.example").unwrap())
        .await
        .unwrap();
    assert_eq!(found.unwrap().user.id, ann.id);

    let err = store
        .update_email(ann.id, &EmailAddress::new("BOB@example.com").unwrap(), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, SaveUserError::Duplicate { .. }), "{err:?}");
    let missing = store
        .update_email(
            UserId::new(4242),
            &EmailAddress::new("x@example.com").unwrap(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(missing, None);
}

async fn passwords_and_flags_change(store: Store) {
    let ann = Seed(&store).user("ann").await;

    assert!(
        store
            .update_password(ann.id, &PasswordHash::new("$new".into()), &[])
            .await
            .unwrap()
    );
    let credentials = store.find_credentials_by_id(ann.id).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash.as_str(), "$new");
    assert!(
        !store
            .update_password(UserId::new(4242), &PasswordHash::new("$x".into()), &[])
            .await
            .unwrap()
    );

    let disabled = store
        .update_user_flags(
            ann.id,
            UserFlags {
                is_active: Some(false),
                is_admin: None,
            },
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!disabled.is_active && !disabled.is_admin);
    let promoted = store
        .update_user_flags(
            ann.id,
            UserFlags {
                is_active: None,
                is_admin: Some(true),
            },
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        !promoted.is_active && promoted.is_admin,
        "a flag left out must not change"
    );
    assert_eq!(
        store
            .update_user_flags(UserId::new(4242), UserFlags::default(), &[])
            .await
            .unwrap(),
        None
    );
}

async fn deleting_a_user_deletes_their_sessions_posts_and_votes(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let session = seed.session(&ann, "anns-token").await;
    let anns_post = seed.post(&ann, "Ann's").await;
    let bobs_post = seed.post(&bob, "Bob's").await;
    store.add_vote(ann.id, bobs_post.id).await.unwrap();
    store.add_vote(bob.id, anns_post.id).await.unwrap();

    assert!(store.delete_user(ann.id).await.unwrap());

    assert_eq!(store.find_user(ann.id).await.unwrap(), None);
    assert_eq!(store.find_session(session).await.unwrap(), None);
    assert_eq!(store.find_post(anns_post.id).await.unwrap(), None);
    assert_eq!(
        store.find_post(bobs_post.id).await.unwrap().unwrap().votes,
        0
    );
    assert_eq!(
        rotate(&store, "anns-token", "next").await,
        Rotation::Invalid
    );
    assert!(!store.delete_user(ann.id).await.unwrap());
}
