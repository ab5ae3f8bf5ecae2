//! Posts: creating, replacing, deleting, listing and searching.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store =>
    a_created_post_can_be_found_with_its_owner_and_no_votes,
    replacing_a_post_changes_it_and_its_update_time,
    replacing_or_deleting_a_missing_post_says_so,
    the_list_shows_published_posts_and_the_viewers_own_newest_first,
    the_list_pages_and_counts_every_match,
    the_list_searches_titles_ignoring_case_and_wildcards,
    the_title_index_follows_every_change_of_a_title,
    the_total_is_counted_up_to_the_cap,
);

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
    let ann = Seed(&store).user("ann").await;

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
    let ann = Seed(&store).user("ann").await;
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
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let bob = seed.user("bob").await;
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
    let ann = Seed(&store).user("ann").await;
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
    let ann = Seed(&store).user("ann").await;
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
    let ann = Seed(&store).user("ann").await;
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
    let ann = Seed(&store).user("ann").await;
    let cap = warden_domain::posts::MAX_COUNTED_POSTS;
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
