//! Posts and votes: every row of contract section 6.

use futures_util::future::join_all;
use poem::http::{Method, StatusCode};
use poem::test::TestResponse;
use serde_json::{Value, json};

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    a_walk_through_posts_and_votes_as_two_users,
    a_new_post_belongs_to_the_caller_and_is_published_by_default,
    bad_posts_are_422_naming_the_field,
    the_list_shows_published_posts_and_your_own_newest_first,
    the_list_pages_searches_and_counts,
    bad_list_parameters_are_422,
    reading_a_missing_or_hidden_post_is_404,
    only_the_owner_replaces_or_deletes,
    deleting_a_post_removes_it_and_its_votes,
    voting_by_the_contract,
    concurrent_votes_answer_one_201_and_the_rest_409,
    authentication_is_checked_before_the_body,
    scopes_are_enforced_per_operation,
    post_paths_accept_a_trailing_slash,
    a_wrong_content_type_is_415,
);

/// Creates a post as `bearer` and returns its JSON.
async fn create(app: &TestApp, bearer: &str, title: &str, published: bool) -> Value {
    let response = app.call(Method::POST,
        "/posts",
        bearer,
        Some(json!({"title": title, "content": format!("about {title}"), "published": published})),
    )
    .await;
    response.assert_status(StatusCode::CREATED);
    json_of(response).await
}

async fn list(app: &TestApp, bearer: &str, query: &str) -> (Vec<String>, u64) {
    let response = app.get_with(&format!("/posts{query}"), bearer).await;
    response.assert_status_is_ok();
    let total = header(&response, "x-total-count").unwrap().parse().unwrap();
    let titles = json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|post| post["title"].as_str().unwrap().to_owned())
        .collect();
    (titles, total)
}

async fn vote(app: &TestApp, bearer: &str, post_id: &Value, dir: i64) -> TestResponse {
    app.call(
        Method::POST,
        "/vote",
        bearer,
        Some(json!({"post_id": post_id, "dir": dir})),
    )
    .await
}

async fn a_walk_through_posts_and_votes_as_two_users(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;

    let first = create(&app, &ann.bearer, "Rust tips", true).await;
    create(&app, &ann.bearer, "Secret draft", false).await;
    create(&app, &bob.bearer, "Bob's diary", true).await;

    assert_eq!(
        list(&app, &bob.bearer, "").await,
        (vec!["Bob's diary".into(), "Rust tips".into()], 2)
    );
    assert_eq!(
        list(&app, &ann.bearer, "?search=RUST").await,
        (vec!["Rust tips".into()], 1)
    );

    let id = &first["id"];
    let replaced = app
        .call(
            Method::PUT,
            &format!("/posts/{id}"),
            &ann.bearer,
            Some(json!({"title": "Rust tips, revised", "content": "more"})),
        )
        .await;
    replaced.assert_status_is_ok();
    assert_eq!(json_of(replaced).await["title"], "Rust tips, revised");

    vote(&app, &bob.bearer, id, 1)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(
        json_of(app.get_with(&format!("/posts/{id}"), &ann.bearer).await).await["votes"],
        1
    );
    vote(&app, &bob.bearer, id, 0)
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(
        json_of(app.get_with(&format!("/posts/{id}"), &ann.bearer).await).await["votes"],
        0
    );

    let response = app
        .call(Method::DELETE, &format!("/posts/{id}"), &bob.bearer, None)
        .await;
    assert_detail(
        response,
        StatusCode::FORBIDDEN,
        "Not authorized to perform requested action",
    )
    .await;
    app.call(Method::DELETE, &format!("/posts/{id}"), &ann.bearer, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        list(&app, &bob.bearer, "").await,
        (vec!["Bob's diary".into()], 1)
    );
}

async fn a_new_post_belongs_to_the_caller_and_is_published_by_default(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let ann_id = ann.id;
    let bob = app.user("bob@example.com").await;
    let bob_id = bob.id;

    // An owner named in the body is ignored: the owner comes from the token.
    let response = app
        .call(
            Method::POST,
            "/posts",
            &ann.bearer,
            Some(json!({"title": "Hi", "content": "There", "owner_id": bob_id})),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    let post = json_of(response).await;

    assert_eq!(post["title"], "Hi");
    assert_eq!(post["content"], "There");
    assert_eq!(post["published"], true);
    assert_eq!(post["owner_id"], ann_id);
    assert_eq!(post["owner"]["id"], ann_id);
    assert_eq!(post["owner"]["email"], "ann@example.com");
    assert!(post["owner"]["created_at"].is_string());
    assert!(
        post["owner"].get("is_admin").is_none(),
        "the owner shows private fields"
    );
    assert_eq!(post["votes"], 0);
    assert!(post["id"].is_i64());
    assert_eq!(post["created_at"], post["updated_at"]);

    let fetched = json_of(
        app.get_with(&format!("/posts/{}", post["id"]), &ann.bearer)
            .await,
    )
    .await;
    assert_eq!(fetched, post);
}

async fn bad_posts_are_422_naming_the_field(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let post = create(&app, &ann.bearer, "Original", true).await;
    let cases = [
        (json!({"title": "", "content": "x"}), "title"),
        (json!({"title": "   ", "content": "x"}), "title"),
        (json!({"title": "t".repeat(301), "content": "x"}), "title"),
        (json!({"title": "t", "content": ""}), "content"),
        (
            json!({"title": "t", "content": "c".repeat(10_001)}),
            "content",
        ),
        (json!({"content": "x"}), "title"),
        (json!({"title": "t"}), "content"),
        (
            json!({"title": "t", "content": "x", "published": "yes"}),
            "published",
        ),
    ];
    for (body, field) in cases {
        for (method, path) in [
            (Method::POST, "/posts".to_owned()),
            (Method::PUT, format!("/posts/{}", post["id"])),
        ] {
            let response = app
                .call(method.clone(), &path, &ann.bearer, Some(body.clone()))
                .await;
            response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
            let detail = json_of(response).await["detail"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(detail.contains(field), "{method} {body} gave {detail:?}");
        }
    }
    // The limits are in characters: 300 two-byte characters are a valid title.
    let response = app
        .call(
            Method::POST,
            "/posts",
            &ann.bearer,
            Some(json!({"title": "é".repeat(300), "content": "x"})),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    // Nothing invalid was stored, nor was the original changed.
    assert_eq!(list(&app, &ann.bearer, "").await.1, 2);
    assert_eq!(
        json_of(
            app.get_with(&format!("/posts/{}", post["id"]), &ann.bearer)
                .await
        )
        .await,
        post
    );
}

async fn the_list_shows_published_posts_and_your_own_newest_first(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    create(&app, &ann.bearer, "ann 1", true).await;
    create(&app, &ann.bearer, "ann draft", false).await;
    create(&app, &bob.bearer, "bob draft", false).await;
    create(&app, &bob.bearer, "bob 1", true).await;

    assert_eq!(
        list(&app, &ann.bearer, "").await.0,
        ["bob 1", "ann draft", "ann 1"]
    );
    assert_eq!(
        list(&app, &bob.bearer, "").await.0,
        ["bob 1", "bob draft", "ann 1"]
    );
}

async fn the_list_pages_searches_and_counts(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    for i in 1..=12 {
        create(&app, &ann.bearer, &format!("Post {i:02}"), true).await;
    }
    create(&app, &ann.bearer, "Something else", true).await;

    let (titles, total) = list(&app, &ann.bearer, "").await;
    assert_eq!(titles.len(), 10, "the default limit is 10");
    assert_eq!(total, 13);
    assert_eq!(
        list(&app, &ann.bearer, "?limit=3&skip=2").await,
        (
            vec!["Post 11".into(), "Post 10".into(), "Post 09".into()],
            13
        )
    );
    assert_eq!(
        list(&app, &ann.bearer, "?search=post&limit=2&skip=11").await,
        (vec!["Post 01".into()], 12)
    );
    assert_eq!(
        list(&app, &ann.bearer, "?search=post&skip=50").await,
        (vec![], 12)
    );
    assert_eq!(
        list(&app, &ann.bearer, "?search=ELSE").await,
        (vec!["Something else".into()], 1)
    );
    assert_eq!(list(&app, &ann.bearer, "?search=").await.1, 13);
    assert_eq!(list(&app, &ann.bearer, "?limit=100").await.0.len(), 13);
}

async fn bad_list_parameters_are_422(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=ten", "limit"),
        ("?skip=-1", "skip"),
        ("?skip=99999999999999999999", "skip"),
    ] {
        let response = app.get_with(&format!("/posts{query}"), &ann.bearer).await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        let detail = json_of(response).await["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains(field), "{query} gave {detail:?}");
    }
}

async fn reading_a_missing_or_hidden_post_is_404(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let draft = create(&app, &ann.bearer, "draft", false).await;
    let id = &draft["id"];

    app.get_with(&format!("/posts/{id}"), &ann.bearer)
        .await
        .assert_status_is_ok();
    let response = app.get_with(&format!("/posts/{id}"), &bob.bearer).await;
    assert_detail(
        response,
        StatusCode::NOT_FOUND,
        &format!("post with id: {id} was not found"),
    )
    .await;
    let response = app.get_with("/posts/987654", &bob.bearer).await;
    assert_detail(
        response,
        StatusCode::NOT_FOUND,
        "post with id: 987654 was not found",
    )
    .await;
    let response = app.get_with("/posts/abc", &bob.bearer).await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn only_the_owner_replaces_or_deletes(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let public = create(&app, &ann.bearer, "public", true).await;
    let draft = create(&app, &ann.bearer, "draft", false).await;
    let body = json!({"title": "hijacked", "content": "x"});

    for method in [Method::PUT, Method::DELETE] {
        let with_body = (method == Method::PUT).then(|| body.clone());
        let response = app
            .call(
                method.clone(),
                &format!("/posts/{}", public["id"]),
                &bob.bearer,
                with_body.clone(),
            )
            .await;
        assert!(header(&response, "www-authenticate").is_none());
        assert_detail(
            response,
            StatusCode::FORBIDDEN,
            "Not authorized to perform requested action",
        )
        .await;
        // Bob cannot see Ann's draft: for him it does not exist.
        let id = &draft["id"];
        let response = app
            .call(
                method.clone(),
                &format!("/posts/{id}"),
                &bob.bearer,
                with_body.clone(),
            )
            .await;
        assert_detail(
            response,
            StatusCode::NOT_FOUND,
            &format!("post with id: {id} does not exist"),
        )
        .await;
        let response = app
            .call(method.clone(), "/posts/987654", &ann.bearer, with_body)
            .await;
        assert_detail(
            response,
            StatusCode::NOT_FOUND,
            "post with id: 987654 does not exist",
        )
        .await;
    }
    // Nothing changed.
    assert_eq!(
        json_of(
            app.get_with(&format!("/posts/{}", public["id"]), &ann.bearer)
                .await
        )
        .await,
        public
    );
    assert_eq!(
        json_of(
            app.get_with(&format!("/posts/{}", draft["id"]), &ann.bearer)
                .await
        )
        .await,
        draft
    );

    let response = app
        .call(
            Method::PUT,
            &format!("/posts/{}", draft["id"]),
            &ann.bearer,
            Some(json!({"title": "now public", "content": "y"})),
        )
        .await;
    response.assert_status_is_ok();
    let replaced = json_of(response).await;
    assert_eq!(replaced["title"], "now public");
    assert_eq!(
        replaced["published"], true,
        "published defaults to true on replace too"
    );
    assert_eq!(replaced["created_at"], draft["created_at"]);
    assert_ne!(replaced["updated_at"], draft["updated_at"]);
}

async fn deleting_a_post_removes_it_and_its_votes(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let post = create(&app, &ann.bearer, "doomed", true).await;
    let id = &post["id"];
    vote(&app, &ann.bearer, id, 1)
        .await
        .assert_status(StatusCode::CREATED);

    let response = app
        .call(Method::DELETE, &format!("/posts/{id}"), &ann.bearer, None)
        .await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert!(
        response
            .0
            .into_body()
            .into_bytes()
            .await
            .unwrap()
            .is_empty()
    );

    app.get_with(&format!("/posts/{id}"), &ann.bearer)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let response = vote(&app, &ann.bearer, id, 0).await;
    assert_detail(
        response,
        StatusCode::NOT_FOUND,
        &format!("Post with id: {id} does not exist"),
    )
    .await;
    let response = app
        .call(Method::DELETE, &format!("/posts/{id}"), &ann.bearer, None)
        .await;
    response.assert_status(StatusCode::NOT_FOUND);
}

async fn voting_by_the_contract(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let bob_id = bob.id;
    let post = create(&app, &ann.bearer, "votable", true).await;
    let draft = create(&app, &ann.bearer, "hidden", false).await;
    let id = &post["id"];

    let response = vote(&app, &bob.bearer, id, 1).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(
        json_of(response).await,
        json!({"message": "successfully added vote"})
    );
    let response = vote(&app, &bob.bearer, id, 1).await;
    assert_detail(
        response,
        StatusCode::CONFLICT,
        &format!("user {bob_id} has already voted on post {id}"),
    )
    .await;
    let response = vote(&app, &bob.bearer, id, 0).await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(
        json_of(response).await,
        json!({"message": "successfully deleted vote"})
    );
    let response = vote(&app, &bob.bearer, id, 0).await;
    assert_detail(response, StatusCode::NOT_FOUND, "Vote does not exist").await;

    let response = vote(&app, &bob.bearer, &json!(987654), 1).await;
    assert_detail(
        response,
        StatusCode::NOT_FOUND,
        "Post with id: 987654 does not exist",
    )
    .await;
    let hidden = &draft["id"];
    let response = vote(&app, &bob.bearer, hidden, 1).await;
    assert_detail(
        response,
        StatusCode::NOT_FOUND,
        &format!("Post with id: {hidden} does not exist"),
    )
    .await;
    // The owner may vote on their own draft.
    vote(&app, &ann.bearer, hidden, 1)
        .await
        .assert_status(StatusCode::CREATED);

    for dir in [2, -1] {
        let response = vote(&app, &bob.bearer, id, dir).await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            json_of(response).await["detail"]
                .as_str()
                .unwrap()
                .contains("dir")
        );
    }
    for body in [
        json!({"post_id": id}),
        json!({"dir": 1}),
        json!({"post_id": "one", "dir": 1}),
        json!({"post_id": id, "dir": "1"}),
    ] {
        let response = app
            .call(Method::POST, "/vote", &bob.bearer, Some(body.clone()))
            .await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        json_of(app.get_with(&format!("/posts/{id}"), &bob.bearer).await).await["votes"],
        0
    );
}

async fn concurrent_votes_answer_one_201_and_the_rest_409(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let post = create(&app, &ann.bearer, "popular", true).await;

    let votes = (0..8).map(|_| vote(&app, &ann.bearer, &post["id"], 1));
    let statuses: Vec<StatusCode> = join_all(votes)
        .await
        .into_iter()
        .map(|response| response.0.status())
        .collect();

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 7), "{statuses:?}");
    assert_eq!(
        json_of(
            app.get_with(&format!("/posts/{}", post["id"]), &ann.bearer)
                .await
        )
        .await["votes"],
        1
    );
}

async fn authentication_is_checked_before_the_body(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let post = create(&app, &ann.bearer, "p", true).await;
    for (method, path) in [
        (Method::POST, "/posts".to_owned()),
        (Method::PUT, format!("/posts/{}", post["id"])),
        (Method::POST, "/vote".to_owned()),
    ] {
        let response = app
            .client
            .request(method.clone(), &path)
            .content_type("application/json")
            .body("{broken")
            .send()
            .await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some("Bearer"),
            "{method} {path}"
        );
        assert_detail(response, StatusCode::UNAUTHORIZED, "Not authenticated").await;
    }
}

async fn scopes_are_enforced_per_operation(app: TestApp) {
    let writer = app.user("ann@example.com").await;
    let post = create(&app, &writer.bearer, "p", true).await;
    let reader = app
        .user_with_scope("bob@example.com", Some("posts:read"))
        .await;
    let profile_only = app.user_with_scope("cy@example.com", Some("profile")).await;

    app.get_with("/posts", &reader.bearer)
        .await
        .assert_status_is_ok();
    app.get_with(&format!("/posts/{}", post["id"]), &reader.bearer)
        .await
        .assert_status_is_ok();
    let body = json!({"title": "t", "content": "c"});
    let writes = [
        (Method::POST, "/posts".to_owned(), Some(body.clone())),
        (Method::PUT, format!("/posts/{}", post["id"]), Some(body)),
        (Method::DELETE, format!("/posts/{}", post["id"]), None),
        (
            Method::POST,
            "/vote".to_owned(),
            Some(json!({"post_id": post["id"], "dir": 1})),
        ),
    ];
    for (method, path, body) in writes {
        let response = app.call(method.clone(), &path, &reader.bearer, body).await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="posts:write""#),
            "{method} {path}"
        );
        assert_detail(response, StatusCode::FORBIDDEN, "Not enough permissions").await;
    }
    for path in ["/posts".to_owned(), format!("/posts/{}", post["id"])] {
        let response = app.get_with(&path, &profile_only.bearer).await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="posts:read""#)
        );
        response.assert_status(StatusCode::FORBIDDEN);
    }
    // Nothing was written.
    assert_eq!(
        json_of(
            app.get_with(&format!("/posts/{}", post["id"]), &writer.bearer)
                .await
        )
        .await,
        post
    );
}

async fn post_paths_accept_a_trailing_slash(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let response = app
        .call(
            Method::POST,
            "/posts/",
            &ann.bearer,
            Some(json!({"title": "t", "content": "c"})),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    let post = json_of(response).await;
    app.get_with("/posts/", &ann.bearer)
        .await
        .assert_status_is_ok();
    vote(&app, &ann.bearer, &post["id"], 1)
        .await
        .assert_status(StatusCode::CREATED);
    let response = app
        .call(
            Method::POST,
            "/vote/",
            &ann.bearer,
            Some(json!({"post_id": post["id"], "dir": 0})),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
}

async fn a_wrong_content_type_is_415(app: TestApp) {
    let ann = app.user("ann@example.com").await;
    let response = app
        .client
        .post("/posts")
        .header("authorization", &ann.bearer)
        .content_type("text/plain")
        .body(r#"{"title": "t", "content": "c"}"#)
        .send()
        .await;
    response.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json_of(response).await["detail"].is_string());
}
