//! The repository contract: every behaviour the domain relies on, run against both SQLite and
//! PostgreSQL through the same test bodies.

use chrono::{TimeDelta, Utc};
use warden_adapters::Store;
use warden_domain::ports::{
    AddVoteError, CreateUserError, PostRepository, SessionRepository, UserRepository,
    VoteRepository,
};
use warden_domain::{
    EmailAddress, NewSession, NewUser, Page, PasswordHash, PostContent, PostDraft, PostId,
    PostQuery, PostTitle, SessionId, User, UserId,
};

/// Runs each listed test body once per database.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = warden_adapters::testing::TestDb::sqlite().await;
                    super::$test(db.store()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = warden_adapters::testing::TestDb::postgres().await;
                    super::$test(db.store()).await;
                }
            )*
        }
    };
}

contract!(
    a_created_user_can_be_found_by_id_and_email,
    created_users_are_active_non_admins_with_increasing_ids,
    emails_are_unique_case_insensitively,
    a_missing_user_is_none,
    email_lookup_ignores_case_but_keeps_the_stored_spelling,
    a_created_session_can_be_found,
    a_missing_session_is_none,
    a_session_needs_an_existing_user,
    timestamps_round_trip_exactly,
    a_created_post_can_be_found_with_its_owner_and_no_votes,
    replacing_a_post_changes_it_and_its_update_time,
    replacing_or_deleting_a_missing_post_says_so,
    the_list_shows_published_posts_and_the_viewers_own_newest_first,
    the_list_pages_and_counts_every_match,
    the_list_searches_titles_ignoring_case_and_wildcards,
    votes_are_counted_wherever_a_post_is_read,
    a_user_votes_once_per_post,
    voting_on_a_missing_post_is_refused,
    concurrent_votes_by_one_user_store_exactly_one,
    deleting_a_post_deletes_its_votes,
);

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: EmailAddress::new(email).unwrap(),
        password_hash: PasswordHash::new(format!("$argon2id$hash-of-{email}")),
    }
}

fn new_session(user_id: UserId) -> NewSession {
    let now = Utc::now();
    NewSession {
        id: SessionId::random(),
        user_id,
        created_at: now,
        expires_at: now + TimeDelta::days(30),
    }
}

async fn a_created_user_can_be_found_by_id_and_email(store: Store) {
    let created = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();

    let by_id = store.find_by_id(created.id).await.unwrap().unwrap();
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
    let first = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();
    let second = UserRepository::create(&store, &new_user("bob@example.com"))
        .await
        .unwrap();

    assert!(first.is_active && !first.is_admin);
    assert!(second.id.get() > first.id.get());
    assert!((Utc::now() - first.created_at) < TimeDelta::minutes(1));
}

async fn emails_are_unique_case_insensitively(store: Store) {
    UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();

    let err = UserRepository::create(&store, &new_user("ANN@Example.com"))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, CreateUserError::Duplicate { email } if email == "ANN@Example.com"),
        "{err:?}"
    );
}

async fn a_missing_user_is_none(store: Store) {
    assert_eq!(store.find_by_id(UserId::new(4242)).await.unwrap(), None);
    let nobody = EmailAddress::new("nobody@example.com").unwrap();
    assert_eq!(
        store.find_credentials_by_email(&nobody).await.unwrap(),
        None
    );
}

async fn email_lookup_ignores_case_but_keeps_the_stored_spelling(store: Store) {
    UserRepository::create(&store, &new_user("Ann.Smith@Example.com"))
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
    let user = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();
    let new = new_session(user.id);

    let created = SessionRepository::create(&store, &new).await.unwrap();
    let found = SessionRepository::find(&store, new.id)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(found, created);
    assert_eq!(found.id, new.id);
    assert_eq!(found.user_id, user.id);
    assert_eq!(found.revoked_at, None);
    assert!(found.is_active_at(Utc::now()));
}

async fn a_missing_session_is_none(store: Store) {
    assert_eq!(
        SessionRepository::find(&store, SessionId::random())
            .await
            .unwrap(),
        None
    );
}

async fn a_session_needs_an_existing_user(store: Store) {
    let result = SessionRepository::create(&store, &new_session(UserId::new(4242))).await;
    assert!(result.is_err(), "a session of no user was stored");
    // Nothing half-written is left behind.
    assert!(store.find_by_id(UserId::new(4242)).await.unwrap().is_none());
}

async fn timestamps_round_trip_exactly(store: Store) {
    let user = UserRepository::create(&store, &new_user("ann@example.com"))
        .await
        .unwrap();
    let new = new_session(user.id);
    SessionRepository::create(&store, &new).await.unwrap();

    let found = SessionRepository::find(&store, new.id)
        .await
        .unwrap()
        .unwrap();

    // Both databases keep microseconds.
    let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros();
    assert_eq!(micros(found.created_at), micros(new.created_at));
    assert_eq!(micros(found.expires_at), micros(new.expires_at));
    assert_eq!(
        store.find_by_id(user.id).await.unwrap().unwrap().created_at,
        user.created_at
    );
}

async fn user(store: &Store, email: &str) -> User {
    UserRepository::create(store, &new_user(email))
        .await
        .unwrap()
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
        search: search.map(Into::into),
        page: Page::new(limit, skip).unwrap(),
    }
}

async fn titles(store: &Store, query: &PostQuery) -> Vec<String> {
    store
        .list(query)
        .await
        .unwrap()
        .posts
        .into_iter()
        .map(|post| post.title.as_str().to_owned())
        .collect()
}

async fn a_created_post_can_be_found_with_its_owner_and_no_votes(store: Store) {
    let ann = user(&store, "ann@example.com").await;

    let created = PostRepository::create(&store, ann.id, &draft("Hello", false))
        .await
        .unwrap();
    let found = PostRepository::find(&store, created.id)
        .await
        .unwrap()
        .unwrap();

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
    let created = PostRepository::create(&store, ann.id, &draft("Hello", true))
        .await
        .unwrap();

    let replaced = store
        .replace(created.id, &draft("Goodbye", false))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(replaced.title.as_str(), "Goodbye");
    assert!(!replaced.published);
    assert_eq!(replaced.created_at, created.created_at);
    assert!(replaced.updated_at >= created.updated_at);
    assert_eq!(
        PostRepository::find(&store, created.id)
            .await
            .unwrap()
            .unwrap(),
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
        store.replace(missing, &draft("x", true)).await.unwrap(),
        None
    );
    assert!(!PostRepository::delete(&store, missing).await.unwrap());
    assert_eq!(PostRepository::find(&store, missing).await.unwrap(), None);
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
        PostRepository::create(&store, owner.id, &draft(title, published))
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
        PostRepository::create(&store, ann.id, &draft(&format!("post {i}"), true))
            .await
            .unwrap();
    }

    let page = store.list(&query(ann.id, None, 2, 1)).await.unwrap();
    let page_titles: Vec<&str> = page.posts.iter().map(|post| post.title.as_str()).collect();
    assert_eq!(page_titles, ["post 4", "post 3"]);
    assert_eq!(page.total, 5);

    let last = store.list(&query(ann.id, None, 2, 4)).await.unwrap();
    assert_eq!(last.posts.len(), 1);
    assert_eq!(last.total, 5);

    let past_the_end = store.list(&query(ann.id, None, 2, 10)).await.unwrap();
    assert!(past_the_end.posts.is_empty());
    assert_eq!(past_the_end.total, 5);

    let nothing = store
        .list(&query(ann.id, Some("nope"), 2, 0))
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
        PostRepository::create(&store, ann.id, &draft(title, true))
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
        .list(&query(ann.id, Some("rust"), 1, 0))
        .await
        .unwrap();
    assert_eq!(found.total, 2);
}

async fn votes_are_counted_wherever_a_post_is_read(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let post = PostRepository::create(&store, ann.id, &draft("Hello", true))
        .await
        .unwrap();
    let other = PostRepository::create(&store, ann.id, &draft("Other", true))
        .await
        .unwrap();

    store.add(ann.id, post.id).await.unwrap();
    store.add(bob.id, post.id).await.unwrap();
    store.add(bob.id, other.id).await.unwrap();

    assert_eq!(
        PostRepository::find(&store, post.id)
            .await
            .unwrap()
            .unwrap()
            .votes,
        2
    );
    let listed = store.list(&query(ann.id, None, 10, 0)).await.unwrap().posts;
    let votes: Vec<(&str, u64)> = listed.iter().map(|p| (p.title.as_str(), p.votes)).collect();
    assert_eq!(votes, [("Other", 1), ("Hello", 2)]);
    let replaced = store
        .replace(post.id, &draft("Hello again", true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.votes, 2);
}

async fn a_user_votes_once_per_post(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = PostRepository::create(&store, ann.id, &draft("Hello", true))
        .await
        .unwrap();

    store.add(ann.id, post.id).await.unwrap();
    let err = store.add(ann.id, post.id).await.unwrap_err();
    assert!(
        matches!(err, AddVoteError::AlreadyVoted { user, post: p } if user == ann.id && p == post.id),
        "{err:?}"
    );

    assert!(store.remove(ann.id, post.id).await.unwrap());
    assert!(!store.remove(ann.id, post.id).await.unwrap());
    store.add(ann.id, post.id).await.unwrap();
}

async fn voting_on_a_missing_post_is_refused(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let err = store.add(ann.id, PostId::new(4242)).await.unwrap_err();
    assert!(
        matches!(err, AddVoteError::PostNotFound(id) if id == PostId::new(4242)),
        "{err:?}"
    );
}

async fn concurrent_votes_by_one_user_store_exactly_one(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = PostRepository::create(&store, ann.id, &draft("Hello", true))
        .await
        .unwrap();

    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.add(ann.id, post.id).await })
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
    assert_eq!(
        PostRepository::find(&store, post.id)
            .await
            .unwrap()
            .unwrap()
            .votes,
        1
    );
}

async fn deleting_a_post_deletes_its_votes(store: Store) {
    let ann = user(&store, "ann@example.com").await;
    let post = PostRepository::create(&store, ann.id, &draft("Hello", true))
        .await
        .unwrap();
    store.add(ann.id, post.id).await.unwrap();

    assert!(PostRepository::delete(&store, post.id).await.unwrap());

    assert_eq!(PostRepository::find(&store, post.id).await.unwrap(), None);
    assert!(
        !store.remove(ann.id, post.id).await.unwrap(),
        "the vote outlived its post"
    );
}
