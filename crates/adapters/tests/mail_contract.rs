//! The repository contract of email (contract section 12): emailed tokens and the outbox, run
//! against both SQLite and PostgreSQL through the same test bodies, and the outbox shared by two
//! instances on one PostgreSQL database.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use warden_adapters::testing::{Seed, TestDb};
use warden_adapters::{Store, StoreOptions};
use warden_domain::{
    accounts::{EmailAddress, NewUser, PasswordHash, SaveUserError, UserId, UserRepository},
    crypto::SecretHash,
    events::{
        EventContext, EventLimit, EventQuery, NewSecurityEvent, SecurityEventKind,
        SecurityEventRepository,
    },
    mail::{EmailTokenPurpose, MailKind, MailRepository, MailToken, NewEmailToken, OutgoingMail},
    sessions::SessionRepository,
};

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    a_new_account_and_its_verification_mail_are_stored_together,
    a_reset_spends_its_token_once_and_changes_everything_it_must,
    a_reset_token_is_refused_when_expired_spent_or_someone_elses,
    racing_resets_with_one_token_let_exactly_one_through,
    a_verification_counts_only_for_the_address_it_was_sent_to,
    a_confirmed_change_waits_while_the_address_is_taken,
    an_unconfirmed_change_of_address_clears_its_verification,
    the_outbox_hands_out_each_due_mail_once_per_lease,
    racing_workers_take_each_mail_once,
    expired_tokens_are_pruned,
);

#[tokio::test]
async fn a_sent_mails_token_is_gone_from_the_sqlite_file() {
    const SECRET: &str = "the-mailed-token-Zq8vN2kLp4";
    let db = TestDb::sqlite().await;
    let store = db.store();
    let ann = Seed(&store).user("ann").await;
    let reset = token(
        EmailTokenPurpose::PasswordReset,
        "#r",
        "ann@example.com",
        TimeDelta::hours(1),
    );
    let carrying = mail(MailKind::PasswordReset, "ann@example.com", Some(SECRET));
    store
        .issue_email_token(ann.id, &reset, &[carrying])
        .await
        .unwrap();
    let now = Utc::now() + TimeDelta::seconds(1);
    let sent = store
        .claim_mail(now, now + TimeDelta::minutes(5))
        .await
        .unwrap()
        .unwrap();
    store.remove_mail(sent.id).await.unwrap();

    // What a copy of the file shows once the log is folded into it.
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let checkpoint = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&checkpoint)
        .await
        .unwrap();
    checkpoint.close().await;
    for file in [path.clone(), format!("{path}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes
                .windows(SECRET.len())
                .any(|window| window == SECRET.as_bytes()),
            "{file} still holds a sent mail's token"
        );
    }
}

fn email(raw: &str) -> EmailAddress {
    EmailAddress::new(raw).unwrap()
}

fn token(
    purpose: EmailTokenPurpose,
    hash: &str,
    address: &str,
    expires_in: TimeDelta,
) -> NewEmailToken {
    let now = Utc::now();
    NewEmailToken {
        purpose,
        hash: SecretHash::new(hash.into()),
        email: email(address),
        created_at: now,
        expires_at: now + expires_in,
    }
}

fn mail(kind: MailKind, to: &str, token: Option<&str>) -> OutgoingMail {
    OutgoingMail {
        kind,
        to: email(to),
        token: token.map(|token| MailToken::new(token.into())),
    }
}

fn hash(raw: &str) -> SecretHash {
    SecretHash::new(raw.into())
}

fn event(user: UserId, kind: SecurityEventKind) -> NewSecurityEvent {
    NewSecurityEvent::now(user, kind, EventContext::default())
}

async fn issue(store: &Store, user: UserId, purpose: EmailTokenPurpose, name: &str, to: &str) {
    store
        .issue_email_token(
            user,
            &token(purpose, name, to, TimeDelta::minutes(30)),
            &[mail(MailKind::PasswordReset, to, Some(name))],
        )
        .await
        .unwrap();
}

/// As [`issue`], a token that expired a minute ago, with no mail.
async fn issue_expired(
    store: &Store,
    user: UserId,
    purpose: EmailTokenPurpose,
    name: &str,
    to: &str,
) {
    store
        .issue_email_token(user, &token(purpose, name, to, TimeDelta::minutes(-1)), &[])
        .await
        .unwrap();
}

/// Every mail due at `at`, taken under a five-minute lease.
async fn drain(store: &Store, at: DateTime<Utc>) -> Vec<OutgoingMail> {
    let mut mails = Vec::new();
    while let Some(queued) = store
        .claim_mail(at, at + TimeDelta::minutes(5))
        .await
        .unwrap()
    {
        mails.push(queued.mail);
    }
    mails
}

/// Spends verification token `name` for `address`, recording `events`; whether it verified.
async fn verify(
    store: &Store,
    name: &str,
    user: UserId,
    address: &str,
    events: &[NewSecurityEvent],
) -> bool {
    store
        .verify_email(&hash(name), user, &email(address), Utc::now(), events)
        .await
        .unwrap()
}

async fn is_verified(store: &Store, user: UserId) -> bool {
    store.find_user(user).await.unwrap().unwrap().email_verified
}

async fn kinds_of_events(store: &Store, user: UserId) -> Vec<SecurityEventKind> {
    let query = EventQuery {
        user_id: Some(user),
        kind: None,
        before: None,
        since: Utc::now() - TimeDelta::hours(1),
        limit: EventLimit::new(100).unwrap(),
    };
    let events = store.list_events(&query).await.unwrap();
    events.into_iter().map(|event| event.kind).collect()
}

async fn a_new_account_and_its_verification_mail_are_stored_together(store: Store) {
    let verification = token(
        EmailTokenPurpose::EmailVerification,
        "#v",
        "Ann@example.com",
        TimeDelta::hours(24),
    );
    let welcome = mail(MailKind::EmailVerification, "Ann@example.com", Some("v"));
    let ann = NewUser {
        email: email("Ann@example.com"),
        password_hash: PasswordHash::new("$argon2id$x".into()),
        is_admin: false,
        email_verified: false,
    };
    let created = store
        .create_user_with_mail(&ann, &verification, &welcome)
        .await
        .unwrap();
    assert!(!created.email_verified);
    let stored = store.find_email_token(&hash("#v")).await.unwrap().unwrap();
    assert_eq!(stored.user_id, created.id);
    assert_eq!(stored.purpose, EmailTokenPurpose::EmailVerification);
    assert_eq!(stored.email.as_str(), "Ann@example.com");
    assert!(!stored.used);

    // A second account with the address stores neither its token nor its mail.
    let again = store
        .create_user_with_mail(
            &NewUser {
                email: email("ann@EXAMPLE.com"),
                ..ann
            },
            &token(
                EmailTokenPurpose::EmailVerification,
                "#w",
                "ann@EXAMPLE.com",
                TimeDelta::hours(24),
            ),
            &mail(MailKind::EmailVerification, "ann@EXAMPLE.com", Some("w")),
        )
        .await;
    assert!(matches!(again, Err(SaveUserError::Duplicate { .. })));
    assert_eq!(store.find_email_token(&hash("#w")).await.unwrap(), None);
    assert_eq!(drain(&store, Utc::now()).await, vec![welcome]);
}

async fn a_reset_spends_its_token_once_and_changes_everything_it_must(store: Store) {
    let ann = Seed(&store).user("Ann").await;
    let first = Seed(&store).session(&ann, "s1").await;
    let second = Seed(&store).session(&ann, "s2").await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#r1",
        "Ann@example.com",
    )
    .await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#r2",
        "Ann@example.com",
    )
    .await;
    let new_hash = PasswordHash::new("$argon2id$new".into());

    let reset = store
        .reset_password(
            &hash("#r1"),
            ann.id,
            &new_hash,
            Utc::now(),
            &[event(ann.id, SecurityEventKind::PasswordReset)],
        )
        .await
        .unwrap();

    assert!(reset);
    let credentials = store.find_credentials_by_id(ann.id).await.unwrap().unwrap();
    assert_eq!(credentials.password_hash, new_hash);
    assert!(
        credentials.user.email_verified,
        "a reset proves the mailbox"
    );
    for id in [first, second] {
        let ended = store.find_session(id).await.unwrap().unwrap();
        assert!(ended.revoked_at.is_some(), "a reset ends every session");
    }
    for name in ["#r1", "#r2"] {
        let spent = store.find_email_token(&hash(name)).await.unwrap().unwrap();
        assert!(spent.used, "{name} still live after a reset");
    }
    assert_eq!(
        kinds_of_events(&store, ann.id).await,
        [SecurityEventKind::PasswordReset]
    );
    let again = store
        .reset_password(
            &hash("#r1"),
            ann.id,
            &new_hash,
            Utc::now(),
            &[event(ann.id, SecurityEventKind::PasswordReset)],
        )
        .await
        .unwrap();
    assert!(!again);
    assert_eq!(
        kinds_of_events(&store, ann.id).await.len(),
        1,
        "a refused reset recorded an event"
    );
}

async fn a_reset_token_is_refused_when_expired_spent_or_someone_elses(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let bob = Seed(&store).user("bob").await;
    let now = Utc::now();
    issue_expired(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#old",
        "ann@example.com",
    )
    .await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::EmailVerification,
        "#verify",
        "ann@example.com",
    )
    .await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#live",
        "ann@example.com",
    )
    .await;
    let new_hash = PasswordHash::new("$argon2id$new".into());

    for (name, owner) in [
        ("#old", ann.id),
        ("#verify", ann.id),
        ("#live", bob.id),
        ("#none", ann.id),
    ] {
        let reset = store
            .reset_password(&hash(name), owner, &new_hash, now, &[])
            .await
            .unwrap();
        assert!(!reset, "{name} reset the password");
    }
    let credentials = store.find_credentials_by_id(ann.id).await.unwrap().unwrap();
    assert_eq!(
        credentials.password_hash.as_str(),
        "$argon2id$hash-of-ann@example.com"
    );
}

async fn racing_resets_with_one_token_let_exactly_one_through(store: Store) {
    let ann = Seed(&store).user("ann").await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#r",
        "ann@example.com",
    )
    .await;
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let hash_i = PasswordHash::new(format!("$argon2id${i}"));
                store
                    .reset_password(&hash("#r"), ann.id, &hash_i, Utc::now(), &[])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1);
}

async fn a_verification_counts_only_for_the_address_it_was_sent_to(store: Store) {
    let ann = Seed(&store).user("ann").await;
    // An expired token for the right address verifies nothing.
    issue_expired(
        &store,
        ann.id,
        EmailTokenPurpose::EmailVerification,
        "#expired",
        "ann@example.com",
    )
    .await;
    let expired = verify(&store, "#expired", ann.id, "ann@example.com", &[]).await;
    assert!(!expired);
    assert!(!is_verified(&store, ann.id).await);
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::EmailVerification,
        "#v",
        "ann@example.com",
    )
    .await;
    store
        .update_email(ann.id, &email("ann@elsewhere.example"), &[])
        .await
        .unwrap();

    let moved = verify(&store, "#v", ann.id, "ann@example.com", &[]).await;
    assert!(!moved);
    assert!(!is_verified(&store, ann.id).await);

    issue(
        &store,
        ann.id,
        EmailTokenPurpose::EmailVerification,
        "#w",
        "ann@elsewhere.example",
    )
    .await;
    let events = [event(ann.id, SecurityEventKind::EmailVerified)];
    let verified = verify(&store, "#w", ann.id, "Ann@Elsewhere.example", &events).await;
    assert!(verified);
    assert!(is_verified(&store, ann.id).await);
    assert!(
        store
            .find_email_token(&hash("#w"))
            .await
            .unwrap()
            .unwrap()
            .used
    );
    assert_eq!(
        kinds_of_events(&store, ann.id).await,
        [SecurityEventKind::EmailVerified]
    );
    let twice = verify(&store, "#w", ann.id, "ann@elsewhere.example", &events).await;
    assert!(!twice);
}

async fn a_confirmed_change_waits_while_the_address_is_taken(store: Store) {
    let ann = Seed(&store).user("ann").await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::EmailChange,
        "#c",
        "New@example.com",
    )
    .await;
    let squatter = Seed(&store).user("new").await;
    let events = [event(ann.id, SecurityEventKind::EmailChanged)];

    let taken = store
        .change_email_confirmed(
            &hash("#c"),
            ann.id,
            &email("New@example.com"),
            Utc::now(),
            &events,
        )
        .await;
    assert!(
        matches!(taken, Err(SaveUserError::Duplicate { .. })),
        "{taken:?}"
    );
    assert!(
        !store
            .find_email_token(&hash("#c"))
            .await
            .unwrap()
            .unwrap()
            .used
    );
    assert!(kinds_of_events(&store, ann.id).await.is_empty());

    store.delete_user(squatter.id).await.unwrap();
    let changed = store
        .change_email_confirmed(
            &hash("#c"),
            ann.id,
            &email("New@example.com"),
            Utc::now(),
            &events,
        )
        .await
        .unwrap();
    assert!(changed);
    let now = store.find_user(ann.id).await.unwrap().unwrap();
    assert_eq!(now.email.as_str(), "New@example.com");
    assert!(now.email_verified);
    assert_eq!(
        kinds_of_events(&store, ann.id).await,
        [SecurityEventKind::EmailChanged]
    );
    let again = store
        .change_email_confirmed(
            &hash("#c"),
            ann.id,
            &email("New@example.com"),
            Utc::now(),
            &events,
        )
        .await
        .unwrap();
    assert!(!again, "a change token worked twice");
}

async fn an_unconfirmed_change_of_address_clears_its_verification(store: Store) {
    let ann = Seed(&store).user("ann").await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::EmailVerification,
        "#v",
        "ann@example.com",
    )
    .await;
    assert!(verify(&store, "#v", ann.id, "ann@example.com", &[]).await);
    // Only the case: the same mailbox.
    let recased = store
        .update_email(ann.id, &email("ANN@example.com"), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(recased.email_verified);
    let moved = store
        .update_email(ann.id, &email("ann@elsewhere.example"), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(!moved.email_verified);
}

async fn the_outbox_hands_out_each_due_mail_once_per_lease(store: Store) {
    let ann = Seed(&store).user("ann").await;
    let change = token(
        EmailTokenPurpose::EmailChange,
        "#c",
        "new@example.com",
        TimeDelta::hours(1),
    );
    let sent = [
        mail(MailKind::EmailChange, "new@example.com", Some("c")),
        mail(MailKind::EmailChangeNotice, "ann@example.com", None),
    ];
    store
        .issue_email_token(ann.id, &change, &sent)
        .await
        .unwrap();
    let now = Utc::now() + TimeDelta::seconds(1);

    let first = store
        .claim_mail(now, now + TimeDelta::minutes(5))
        .await
        .unwrap()
        .unwrap();
    let second = store
        .claim_mail(now, now + TimeDelta::minutes(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        [first.mail.clone(), second.mail.clone()],
        sent,
        "oldest first, as queued"
    );
    assert_eq!((first.attempts, second.attempts), (1, 1));
    assert_eq!(
        store
            .claim_mail(now, now + TimeDelta::minutes(5))
            .await
            .unwrap(),
        None
    );

    // Sent: gone. Failed: due again when the backoff ends, not before.
    store.remove_mail(first.id).await.unwrap();
    store
        .retry_mail(second.id, now + TimeDelta::minutes(1))
        .await
        .unwrap();
    let early = now + TimeDelta::seconds(59);
    assert_eq!(
        store
            .claim_mail(early, early + TimeDelta::minutes(5))
            .await
            .unwrap(),
        None
    );
    let due = now + TimeDelta::minutes(1);
    let retried = store
        .claim_mail(due, due + TimeDelta::minutes(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((retried.id, retried.attempts), (second.id, 2));

    // A worker that took it and died: it is due again when the lease ends.
    let after_lease = due + TimeDelta::minutes(5);
    let orphan = store
        .claim_mail(after_lease, after_lease + TimeDelta::minutes(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((orphan.id, orphan.attempts), (second.id, 3));
    assert_eq!(orphan.mail.token, None);
}

async fn racing_workers_take_each_mail_once(store: Store) {
    let ann = Seed(&store).user("ann").await;
    queue_resets(&store, ann.id, 20).await;
    assert_each_sent_once(vec![store; 4], 20).await;
}

/// Queues `count` password-reset mails (tokens `#0`, `#1`...) to `user`.
async fn queue_resets(store: &Store, user: UserId, count: usize) {
    for i in 0..count {
        let name = format!("#{i}");
        issue(
            store,
            user,
            EmailTokenPurpose::PasswordReset,
            &name,
            "ann@example.com",
        )
        .await;
    }
}

/// One worker per store drains the outbox at once: `count` mails are taken, each once.
async fn assert_each_sent_once(workers: Vec<Store>, count: usize) {
    let at = Utc::now() + TimeDelta::seconds(1);
    let workers: Vec<_> = workers
        .into_iter()
        .map(|store| tokio::spawn(async move { drain(&store, at).await }))
        .collect();
    let mut tokens = Vec::new();
    for worker in workers {
        for mail in worker.await.unwrap() {
            tokens.push(mail.token.unwrap().expose().to_owned());
        }
    }
    assert_eq!(tokens.len(), count, "{tokens:?}");
    assert_eq!(
        tokens.iter().collect::<HashSet<_>>().len(),
        count,
        "{tokens:?}"
    );
}

async fn expired_tokens_are_pruned(store: Store) {
    let ann = Seed(&store).user("ann").await;
    issue_expired(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#old",
        "ann@example.com",
    )
    .await;
    issue(
        &store,
        ann.id,
        EmailTokenPurpose::PasswordReset,
        "#live",
        "ann@example.com",
    )
    .await;

    assert_eq!(
        store.delete_expired_email_tokens(Utc::now()).await.unwrap(),
        1
    );
    assert_eq!(store.find_email_token(&hash("#old")).await.unwrap(), None);
    assert!(
        store
            .find_email_token(&hash("#live"))
            .await
            .unwrap()
            .is_some()
    );
}

/// Two instances on one PostgreSQL database, each with its own pool, drain one outbox: every
/// mail goes out exactly once.
#[tokio::test]
async fn two_instances_send_each_mail_once() {
    let db = TestDb::postgres().await;
    let one = db.store();
    let two = Store::open(db.url(), &StoreOptions::default())
        .await
        .unwrap();
    let ann = Seed(&one).user("ann").await;
    queue_resets(&one, ann.id, 40).await;
    assert_each_sent_once([one, two].into_iter().cycle().take(6).collect(), 40).await;
}
