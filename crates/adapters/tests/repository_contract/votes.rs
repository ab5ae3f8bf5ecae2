//! Votes: one per user and post, counted wherever a post is read.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    vote_counts_follow_votes_taken_back_and_voters_deleted,
    votes_are_counted_wherever_a_post_is_read,
    a_user_votes_once_per_post,
    voting_on_a_missing_post_is_refused,
    concurrent_votes_by_one_user_store_exactly_one,
    deleting_a_post_deletes_its_votes,
);

async fn vote_counts_follow_votes_taken_back_and_voters_deleted(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let post = seed.post(&ann, "counted").await;
    let mut voters = Vec::new();
    for name in ["bob", "cy", "di"] {
        let voter = seed.user(name).await;
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
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
    let post = seed.post(&ann, "Hello").await;
    let other = seed.post(&ann, "Other").await;

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
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let post = seed.post(&ann, "Hello").await;

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
    let ann = Seed(&store).user("ann").await;
    let err = store.add_vote(ann.id, PostId::new(4242)).await.unwrap_err();
    assert!(
        matches!(err, AddVoteError::PostNotFound(id) if id == PostId::new(4242)),
        "{err:?}"
    );
}

async fn concurrent_votes_by_one_user_store_exactly_one(store: Store) {
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let post = seed.post(&ann, "Hello").await;

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
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let post = seed.post(&ann, "Hello").await;
    store.add_vote(ann.id, post.id).await.unwrap();

    assert!(store.delete_post(post.id).await.unwrap());

    assert_eq!(store.find_post(post.id).await.unwrap(), None);
    assert!(
        !store.remove_vote(ann.id, post.id).await.unwrap(),
        "the vote outlived its post"
    );
}
