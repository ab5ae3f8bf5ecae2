//! The repository contract: every behaviour the domain relies on, run against both SQLite and
//! PostgreSQL through the same test bodies.

use chrono::{TimeDelta, Utc};
use warden_adapters::Store;
use warden_domain::ports::{
    AddVoteError, MfaRepository, PersonalTokenRepository, PostRepository, SaveUserError,
    SecurityEventRepository, SessionRepository, UserRepository, VoteRepository,
};
use warden_domain::{
    AuthMethods, ClientId, EmailAddress, EventContext, EventId, EventLimit, EventQuery,
    NewRefreshToken, NewSecurityEvent, NewSession, NewUser, Page, PasswordHash, PersonalTokenPage,
    PostContent, PostDraft, PostId, PostQuery, PostTitle, RefreshTokenHash, Rotation, Scopes,
    SearchTerm, SecurityEventKind, SessionId, SessionOrigin, SessionPage, User, UserFlags, UserId,
};

/// The caps the app holds accounts to by default (`MAX_SESSIONS_PER_ACCOUNT`,
/// `MAX_PERSONAL_TOKENS`).
const MAX_SESSIONS: u32 = 100;
const MAX_TOKENS: u32 = 50;

warden_adapters::on_both_stores!(
    a_created_user_can_be_found_by_id_and_email,
    created_users_are_active_non_admins_with_increasing_ids,
    emails_are_unique_case_insensitively,
    a_missing_user_is_none,
    email_lookup_ignores_case_but_keeps_the_stored_spelling,
    a_created_session_can_be_found,
    a_missing_session_is_none,
    a_migrated_database_has_no_pending_migration,
    a_session_is_read_with_its_user_as_the_user_is_now,
    a_session_needs_an_existing_user,
    timestamps_round_trip_exactly,
    a_created_post_can_be_found_with_its_owner_and_no_votes,
    replacing_a_post_changes_it_and_its_update_time,
    replacing_or_deleting_a_missing_post_says_so,
    the_list_shows_published_posts_and_the_viewers_own_newest_first,
    the_list_pages_and_counts_every_match,
    the_list_searches_titles_ignoring_case_and_wildcards,
    the_title_index_follows_every_change_of_a_title,
    the_total_is_counted_up_to_the_cap,
    vote_counts_follow_votes_taken_back_and_voters_deleted,
    votes_are_counted_wherever_a_post_is_read,
    a_user_votes_once_per_post,
    voting_on_a_missing_post_is_refused,
    concurrent_votes_by_one_user_store_exactly_one,
    deleting_a_post_deletes_its_votes,
    users_are_created_as_admins_when_asked,
    credentials_are_found_by_id,
    users_are_listed_in_pages_by_id,
    emails_change_unless_taken,
    passwords_and_flags_change,
    deleting_a_user_deletes_their_sessions_posts_and_votes,
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
    events_are_stored_with_the_change_they_record_and_only_if_it_happened,
    an_event_of_a_refused_change_is_not_stored,
    events_are_listed_newest_first_by_page_user_kind_and_age,
    old_events_are_deleted_and_an_accounts_go_with_it,
    a_detached_event_is_stored_after_the_call_returns,
    a_pending_factor_is_replaced_until_a_code_confirms_it,
    each_code_step_is_accepted_once_and_never_an_older_one,
    recovery_codes_are_single_use_and_replaced_as_a_set,
    an_mfa_challenge_is_spent_once_and_tried_at_most_five_times_even_racing,
    personal_tokens_are_found_by_hash_with_their_user_listed_live_and_revoked_once,
);

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: EmailAddress::new(email).unwrap(),
        password_hash: PasswordHash::new(format!("$argon2id$hash-of-{email}")),
        is_admin: false,
        email_verified: false,
    }
}

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

fn new_session(user_id: UserId) -> NewSession {
    let now = Utc::now();
    NewSession {
        id: SessionId::random(),
        user_id,
        created_at: now,
        expires_at: now + TimeDelta::days(30),
        scopes: Scopes::parse("profile posts:read").unwrap(),
        origin: SessionOrigin {
            client_id: ClientId::new("mobile-app").unwrap(),
            user_agent: Some("Warden/1.0 (iPhone; iOS 19)".into()),
            ip_address: Some("2001:db8::7".parse().unwrap()),
            auth_methods: AuthMethods::Password,
        },
    }
}

fn refresh_token(name: &str, expires_in: TimeDelta) -> NewRefreshToken {
    NewRefreshToken {
        hash: RefreshTokenHash::new(format!("hash-of-{name}")),
        expires_at: Utc::now() + expires_in,
    }
}

/// Presents the refresh token called `presented` (stored as `hash-of-<name>`) and, if it is
/// live, stores `next` after it, valid for a day.
async fn rotate(store: &Store, presented: &str, next: &str) -> Rotation {
    let presented = RefreshTokenHash::new(format!("hash-of-{presented}"));
    store
        .rotate_refresh_token(
            &presented,
            &refresh_token(next, TimeDelta::days(1)),
            Utc::now(),
        )
        .await
        .unwrap()
}

/// Opens a session for `user` whose refresh token is `first`.
async fn session_with(store: &Store, user: UserId, first: &str) -> SessionId {
    let new = new_session(user);
    store
        .create_session(
            &new,
            &refresh_token(first, TimeDelta::days(1)),
            MAX_SESSIONS,
            &[],
        )
        .await
        .unwrap();
    new.id
}

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

async fn a_created_session_can_be_found(store: Store) {
    let user = store
        .create_user(&new_user("ann@example.com"))
        .await
        .unwrap();
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
    let user = store
        .create_user(&new_user("ann@example.com"))
        .await
        .unwrap();
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

async fn a_migrated_database_has_no_pending_migration(store: Store) {
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
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
    let user = store
        .create_user(&new_user("ann@example.com"))
        .await
        .unwrap();
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

async fn user(store: &Store, email: &str) -> User {
    store.create_user(&new_user(email)).await.unwrap()
}

fn draft(title: &str, published: bool) -> PostDraft {
    PostDraft {
        title: PostTitle::new(title.into()).unwrap(),
        content: PostContent::new(format!("content of {title}")).unwrap(),
        published,
    }
}

fn query(viewer: UserId, search: Option<&str>, limit: u32, skip: u64) -> PostQuery {
    PostQuery {
        viewer,
        search: search.and_then(|search| SearchTerm::new(search).unwrap()),
        page: Page::new(limit, skip).unwrap(),
    }
}

async fn titles(store: &Store, query: &PostQuery) -> Vec<String> {
    store
        .list_posts(query)
        .await
        .unwrap()
        .posts
        .into_iter()
        .map(|post| post.title.as_str().to_owned())
        .collect()
}

async fn a_created_post_can_be_found_with_its_owner_and_no_votes(store: Store) {
    let ann = user(&store, "ann@example.com").await;

    let created = store
        .create_post(ann.id, &draft("Hello", false))
        .await
        .unwrap();
    let found = store.find_post(created.id).await.unwrap().unwrap();

    assert_eq!(found, created);
    assert_eq!(found.title.as_str(), "Hello");
    assert_eq!(found.content.as_str(), "content of Hello");
    assert!(!found.published);
    assert_eq!(found.owner, ann);
    assert_eq!(found.votes, 0);
    assert_eq!(found.created_at, found.updated_at);
}

async fn replacing_a_post_changes_it_and_its_update_time(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let created = store
        .create_post(ann.id, &draft("Hello", true))
        .await
        .unwrap();

    let replaced = store
        .replace_post(created.id, &draft("Goodbye", false))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(replaced.title.as_str(), "Goodbye");
    assert!(!replaced.published);
    assert_eq!(replaced.created_at, created.created_at);
    assert!(replaced.updated_at >= created.updated_at);
    assert_eq!(
        store.find_post(created.id).await.unwrap().unwrap(),
        replaced
    );
    // The search key follows the title.
    assert_eq!(
        titles(&store, &query(ann.id, Some("goodbye"), 10, 0)).await,
        ["Goodbye"]
    );
    assert!(
        titles(&store, &query(ann.id, Some("hello"), 10, 0))
            .await
            .is_empty()
    );
}

async fn replacing_or_deleting_a_missing_post_says_so(store: Store) {
    let missing = PostId::new(4242);
    assert_eq!(
        store
            .replace_post(missing, &draft("x", true))
            .await
            .unwrap(),
        None
    );
    assert!(!store.delete_post(missing).await.unwrap());
    assert_eq!(store.find_post(missing).await.unwrap(), None);
}

async fn the_list_shows_published_posts_and_the_viewers_own_newest_first(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    for (owner, title, published) in [
        (&ann, "ann public 1", true),
        (&ann, "ann draft", false),
        (&bob, "bob public", true),
        (&bob, "bob draft", false),
        (&ann, "ann public 2", true),
    ] {
        store
            .create_post(owner.id, &draft(title, published))
            .await
            .unwrap();
    }

    assert_eq!(
        titles(&store, &query(ann.id, None, 10, 0)).await,
        ["ann public 2", "bob public", "ann draft", "ann public 1"]
    );
    assert_eq!(
        titles(&store, &query(bob.id, None, 10, 0)).await,
        ["ann public 2", "bob draft", "bob public", "ann public 1"]
    );
}

async fn the_list_pages_and_counts_every_match(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    for i in 1..=5 {
        store
            .create_post(ann.id, &draft(&format!("post {i}"), true))
            .await
            .unwrap();
    }

    let page = store.list_posts(&query(ann.id, None, 2, 1)).await.unwrap();
    let page_titles: Vec<&str> = page.posts.iter().map(|post| post.title.as_str()).collect();
    assert_eq!(page_titles, ["post 4", "post 3"]);
    assert_eq!(page.total, 5);

    let last = store.list_posts(&query(ann.id, None, 2, 4)).await.unwrap();
    assert_eq!(last.posts.len(), 1);
    assert_eq!(last.total, 5);

    let past_the_end = store.list_posts(&query(ann.id, None, 2, 10)).await.unwrap();
    assert!(past_the_end.posts.is_empty());
    assert_eq!(past_the_end.total, 5);

    let nothing = store
        .list_posts(&query(ann.id, Some("nope"), 2, 0))
        .await
        .unwrap();
    assert!(nothing.posts.is_empty());
    assert_eq!(nothing.total, 0);
}

async fn the_list_searches_titles_ignoring_case_and_wildcards(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    for title in [
        "Rust Tips",
        "TRUSTED advice",
        "Ärger im Büro",
        "100% sure",
        "snake_case",
        "plain",
    ] {
        store
            .create_post(ann.id, &draft(title, true))
            .await
            .unwrap();
    }

    assert_eq!(
        titles(&store, &query(ann.id, Some("rust"), 10, 0)).await,
        ["TRUSTED advice", "Rust Tips"]
    );
    // Non-ASCII letters fold the same way on both databases.
    assert_eq!(
        titles(&store, &query(ann.id, Some("ÄRGER"), 10, 0)).await,
        ["Ärger im Büro"]
    );
    // LIKE's wildcards in a search are literal characters.
    assert_eq!(
        titles(&store, &query(ann.id, Some("%"), 10, 0)).await,
        ["100% sure"]
    );
    assert_eq!(
        titles(&store, &query(ann.id, Some("_"), 10, 0)).await,
        ["snake_case"]
    );
    assert_eq!(
        titles(&store, &query(ann.id, Some("\\"), 10, 0)).await,
        Vec::<String>::new()
    );
    let found = store
        .list_posts(&query(ann.id, Some("rust"), 1, 0))
        .await
        .unwrap();
    assert_eq!(found.total, 2);
}

async fn the_title_index_follows_every_change_of_a_title(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let quoted = store
        .create_post(ann.id, &draft(r#"He said "hello world" twice"#, true))
        .await
        .unwrap();
    let renamed = store
        .create_post(ann.id, &draft("The first name", true))
        .await
        .unwrap();
    let deleted = store
        .create_post(ann.id, &draft("Soon gone, first", true))
        .await
        .unwrap();

    // Searches of three characters or more use the index: quotes are literal there too.
    assert_eq!(
        titles(&store, &query(ann.id, Some(r#""hello wor"#), 10, 0)).await,
        [quoted.title.as_str()]
    );
    assert_eq!(
        titles(&store, &query(ann.id, Some("FIRST"), 10, 0)).await,
        ["Soon gone, first", "The first name"]
    );
    store
        .replace_post(renamed.id, &draft("The second name", true))
        .await
        .unwrap();
    store.delete_post(deleted.id).await.unwrap();
    assert_eq!(
        titles(&store, &query(ann.id, Some("first"), 10, 0)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        titles(&store, &query(ann.id, Some("second"), 10, 0)).await,
        ["The second name"]
    );
    // One or two characters: no index, the same answers.
    assert_eq!(
        titles(&store, &query(ann.id, Some("nd"), 10, 0)).await,
        ["The second name"]
    );
}

async fn the_total_is_counted_up_to_the_cap(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let cap = warden_domain::MAX_COUNTED_POSTS;
    for i in 0..=cap {
        store
            .create_post(ann.id, &draft(&format!("post {i}"), true))
            .await
            .unwrap();
    }
    let all = store.list_posts(&query(ann.id, None, 10, 0)).await.unwrap();
    assert_eq!(all.total, cap);
    assert_eq!(all.posts[0].title.as_str(), format!("post {cap}"));
    let searched = store
        .list_posts(&query(ann.id, Some("post"), 10, 0))
        .await
        .unwrap();
    assert_eq!(searched.total, cap);
    let fewer = store
        .list_posts(&query(ann.id, Some("post 99"), 10, 0))
        .await
        .unwrap();
    // post 99 and post 990 to post 999.
    assert_eq!(fewer.total, 11);
}

async fn vote_counts_follow_votes_taken_back_and_voters_deleted(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = store
        .create_post(ann.id, &draft("counted", true))
        .await
        .unwrap();
    let mut voters = Vec::new();
    for name in ["bob", "cy", "di"] {
        let voter = user(&store, &format!("{name}@example.com")).await;
        store.add_vote(voter.id, post.id).await.unwrap();
        voters.push(voter);
    }
    let votes =
        |store: Store| async move { store.find_post(post.id).await.unwrap().unwrap().votes };
    assert_eq!(votes(store.clone()).await, 3);
    store.remove_vote(voters[0].id, post.id).await.unwrap();
    assert_eq!(votes(store.clone()).await, 2);
    // A vote refused as a duplicate counts nothing.
    assert!(store.add_vote(voters[1].id, post.id).await.is_err());
    assert_eq!(votes(store.clone()).await, 2);
    // Deleting a voter's account takes their votes, and the count follows.
    store.delete_user(voters[2].id).await.unwrap();
    assert_eq!(votes(store.clone()).await, 1);
    let listed = store.list_posts(&query(ann.id, None, 10, 0)).await.unwrap();
    assert_eq!(listed.posts[0].votes, 1);
}

async fn votes_are_counted_wherever_a_post_is_read(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let post = store
        .create_post(ann.id, &draft("Hello", true))
        .await
        .unwrap();
    let other = store
        .create_post(ann.id, &draft("Other", true))
        .await
        .unwrap();

    store.add_vote(ann.id, post.id).await.unwrap();
    store.add_vote(bob.id, post.id).await.unwrap();
    store.add_vote(bob.id, other.id).await.unwrap();

    assert_eq!(store.find_post(post.id).await.unwrap().unwrap().votes, 2);
    let listed = store
        .list_posts(&query(ann.id, None, 10, 0))
        .await
        .unwrap()
        .posts;
    let votes: Vec<(&str, u64)> = listed.iter().map(|p| (p.title.as_str(), p.votes)).collect();
    assert_eq!(votes, [("Other", 1), ("Hello", 2)]);
    let replaced = store
        .replace_post(post.id, &draft("Hello again", true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.votes, 2);
}

async fn a_user_votes_once_per_post(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = store
        .create_post(ann.id, &draft("Hello", true))
        .await
        .unwrap();

    store.add_vote(ann.id, post.id).await.unwrap();
    let err = store.add_vote(ann.id, post.id).await.unwrap_err();
    assert!(
        matches!(err, AddVoteError::AlreadyVoted { user, post: p } if user == ann.id && p == post.id),
        "{err:?}"
    );

    assert!(store.remove_vote(ann.id, post.id).await.unwrap());
    assert!(!store.remove_vote(ann.id, post.id).await.unwrap());
    store.add_vote(ann.id, post.id).await.unwrap();
}

async fn voting_on_a_missing_post_is_refused(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let err = store.add_vote(ann.id, PostId::new(4242)).await.unwrap_err();
    assert!(
        matches!(err, AddVoteError::PostNotFound(id) if id == PostId::new(4242)),
        "{err:?}"
    );
}

async fn concurrent_votes_by_one_user_store_exactly_one(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = store
        .create_post(ann.id, &draft("Hello", true))
        .await
        .unwrap();

    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add_vote(ann.id, post.id).await })
        })
        .collect();
    let mut added = 0;
    let mut conflicts = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => added += 1,
            Err(AddVoteError::AlreadyVoted { .. }) => conflicts += 1,
            Err(err) => panic!("a racing vote failed otherwise: {err:?}"),
        }
    }

    assert_eq!((added, conflicts), (1, 15));
    assert_eq!(store.find_post(post.id).await.unwrap().unwrap().votes, 1);
}

async fn deleting_a_post_deletes_its_votes(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = store
        .create_post(ann.id, &draft("Hello", true))
        .await
        .unwrap();
    store.add_vote(ann.id, post.id).await.unwrap();

    assert!(store.delete_post(post.id).await.unwrap());

    assert_eq!(store.find_post(post.id).await.unwrap(), None);
    assert!(
        !store.remove_vote(ann.id, post.id).await.unwrap(),
        "the vote outlived its post"
    );
}

async fn users_are_created_as_admins_when_asked(store: Store) {
    let mut admin = new_user("root@example.com");
    admin.is_admin = true;
    let created = store.create_user(&admin).await.unwrap();
    assert!(created.is_admin && created.is_active);
}

async fn credentials_are_found_by_id(store: Store) {
    let ann = user(&store, "ann@example.com").await;
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
        ids.push(user(&store, &format!("{name}@example.com")).await.id);
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
    let ann = user(&store, "ann@example.com").await;
    user(&store, "bob@example.com").await;

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
    let ann = user(&store, "ann@example.com").await;

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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let session = session_with(&store, ann.id, "anns-token").await;
    let anns_post = store
        .create_post(ann.id, &draft("Ann's", true))
        .await
        .unwrap();
    let bobs_post = store
        .create_post(bob.id, &draft("Bob's", true))
        .await
        .unwrap();
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

async fn sessions_remember_their_scopes(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let id = session_with(&store, ann.id, "first").await;
    let found = store.find_session(id).await.unwrap().unwrap();
    assert_eq!(found.scopes.to_string(), "profile posts:read");
}

async fn a_refresh_token_rotates_once_and_a_replay_is_reported(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let id = session_with(&store, ann.id, "first").await;
    let first = RefreshTokenHash::new("hash-of-first".into());

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
    let nothing = RefreshTokenHash::new("hash-of-nothing".into());
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
    let ann = user(&store, "ann@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
    let id = session_with(&store, ann.id, "contested").await;

    let attempts: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let presented = RefreshTokenHash::new("hash-of-contested".into());
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
    let ann = user(&store, "ann@example.com").await;
    let id = session_with(&store, ann.id, "first").await;
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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let keep = session_with(&store, ann.id, "a1").await;
    let end1 = session_with(&store, ann.id, "a2").await;
    let end2 = session_with(&store, ann.id, "a3").await;
    let bobs = session_with(&store, bob.id, "b1").await;

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
    let ann = user(&store, "ann@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
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
    session_with(&store, bob.id, "bobs").await;

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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let annes = session_with(&store, ann.id, "a1").await;
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
    let ann = user(&store, "ann@example.com").await;
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

/// Behind a transaction pooler (here PostgreSQL itself, in the same mode), every operation still
/// works, and migrating is refused with the reason.
#[tokio::test]
async fn in_transaction_pooling_mode_operations_work_and_migrating_is_refused() {
    let db = warden_adapters::testing::TestDb::postgres().await;
    let options = warden_adapters::StoreOptions {
        transaction_pooling: true,
        ..warden_adapters::StoreOptions::default()
    };
    let store = Store::open(db.url(), &options).await.unwrap();
    let ann = user(&store, "ann@example.com").await;
    let id = session_with(&store, ann.id, "first").await;
    assert!(matches!(
        rotate(&store, "first", "second").await,
        Rotation::Rotated(_)
    ));
    assert!(store.find_session(id).await.unwrap().is_some());
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
    );
    store.ping().await.unwrap();

    let err = store.migrate().await.unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot run through a transaction pooler"),
        "{err:#}"
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
    let ann = user(&store, "ann@example.com").await;
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

fn event(user: UserId, kind: SecurityEventKind, session_id: Option<SessionId>) -> NewSecurityEvent {
    NewSecurityEvent::now(
        user,
        kind,
        EventContext {
            ip_address: Some("2001:db8::9".parse().unwrap()),
            user_agent: Some("Firefox/140.0 ünïcode".into()),
            session_id,
        },
    )
}

/// Every event of the store, newest first (within the last day).
async fn events_of(store: &Store, user_id: Option<UserId>) -> Vec<warden_domain::SecurityEvent> {
    store
        .list_events(&EventQuery {
            user_id,
            kind: None,
            before: None,
            limit: EventLimit::new(200).unwrap(),
            since: Utc::now() - TimeDelta::days(1),
        })
        .await
        .unwrap()
}

fn kinds(events: &[warden_domain::SecurityEvent]) -> Vec<SecurityEventKind> {
    events.iter().map(|event| event.kind).collect()
}

async fn events_are_stored_with_the_change_they_record_and_only_if_it_happened(store: Store) {
    use SecurityEventKind::*;
    let ann = user(&store, "ann@example.com").await;
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
    let other = session_with(&store, ann.id, "second").await;
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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
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

fn codes(names: &[&str]) -> Vec<warden_domain::RecoveryCodeHash> {
    names
        .iter()
        .map(|name| warden_domain::RecoveryCodeHash::new(format!("hash-of-{name}")))
        .collect()
}

fn sealed(name: &str) -> warden_domain::SealedTotpSecret {
    warden_domain::SealedTotpSecret::new(format!("v1.{name}"))
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
    let ann = user(store, "ann@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
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
    let bob = user(&store, "bob@example.com").await;
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
    let bob = user(&store, "bob@example.com").await;
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
    let ann = user(&store, "ann@example.com").await;
    let now = Utc::now();
    let challenge = |name: &str, expires_at| warden_domain::MfaChallenge {
        token_hash: RefreshTokenHash::new(format!("hash-of-{name}")),
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
            .find_mfa_challenge(&RefreshTokenHash::new("hash-of-unknown".into()))
            .await
            .unwrap()
            .is_none()
    );
}

fn new_token(user: UserId, name: &str, expires_in: TimeDelta) -> warden_domain::NewPersonalToken {
    let now = Utc::now();
    warden_domain::NewPersonalToken {
        user_id: user,
        name: warden_domain::PersonalTokenName::new(name.into()).unwrap(),
        scopes: Scopes::parse("profile posts:read").unwrap(),
        hash: RefreshTokenHash::new(format!("hash-of-{name}")),
        created_at: now,
        expires_at: now + expires_in,
    }
}

async fn personal_tokens_are_found_by_hash_with_their_user_listed_live_and_revoked_once(
    store: Store,
) {
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
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
        .find_personal_token(&RefreshTokenHash::new("hash-of-ci".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, ci);
    assert_eq!(owner.id, ann.id);
    assert!(
        store
            .find_personal_token(&RefreshTokenHash::new("hash-of-nothing".into()))
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
            .find_personal_token(&RefreshTokenHash::new("hash-of-newer".into()))
            .await
            .unwrap()
            .is_none()
    );
}
