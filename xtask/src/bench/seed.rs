//! Seeding: accounts and a personal token through the API (they need a password), posts and
//! votes through SQL (the small set of 100 posts, the large one of 100 000 and a million votes).

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use super::database::Database;
use super::{BIG_POSTS, BIG_VOTERS, PASSWORD, Server, VOTES_PER_VOTER};
use crate::net::http;

/// Registers `email` and logs in: (user id, access token).
pub(super) fn account(server: &Server, email: &str) -> anyhow::Result<(i64, String)> {
    let json = [("Content-Type", "application/json")];
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let (status, answer) = http(&server.addr, "POST", "/users", &json, &body)?;
    ensure!(status == 201, "registration answered {status}: {answer}");
    let id = serde_json::from_str::<Value>(&answer)?["id"]
        .as_i64()
        .context("no id")?;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, answer) = http(&server.addr, "POST", "/login", &form, &login_form(email))?;
    ensure!(status == 200, "login answered {status}: {answer}");
    let token = serde_json::from_str::<Value>(&answer)?["access_token"]
        .as_str()
        .context("no token")?
        .to_owned();
    Ok((id, token))
}

/// A personal access token of the account `token` logged in.
pub(super) fn personal_token(server: &Server, token: &str) -> anyhow::Result<String> {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let body = json!({
        "name": "bench",
        "scopes": "profile",
        "expires_in_days": 1,
        "current_password": PASSWORD,
    })
    .to_string();
    let (status, answer) = http(&server.addr, "POST", "/users/me/tokens", &headers, &body)?;
    ensure!(
        status == 201,
        "making a personal token answered {status}: {answer}"
    );
    Ok(serde_json::from_str::<Value>(&answer)?["token"]
        .as_str()
        .context("no token")?
        .to_owned())
}

pub(super) fn login_form(email: &str) -> String {
    format!(
        "username={}&password={}",
        email.replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    )
}

/// "Post N about wA and wB", with A and B spread over 5 000 words: a search for one word
/// matches about one post in 2 500, each of its trigrams a few hundred at 100 000 posts, as a
/// word in real titles would; a search for "about" matches every post.
fn title() -> &'static str {
    "'Post ' || s.n || ' about w' || ((CAST(s.n AS BIGINT) * 7919) % 5000) \
     || ' and w' || ((CAST(s.n AS BIGINT) * 104729) % 5000)"
}

/// 100 posts by Ann, newest last, half of them with her vote.
pub(super) fn seed_small(database: &Database, ann: i64) -> anyhow::Result<()> {
    let backend = database.backend;
    let title = title();
    let created = ago(backend, "1000000 - s.n");
    let truth = if backend == "sqlite" { "1" } else { "TRUE" };
    database.execute(&format!(
        "INSERT INTO posts (owner_id, title, title_key, content, published, created_at, updated_at)
         SELECT {ann}, {title}, lower({title}), 'Seeded for the bench.', {truth}, {created}, {created}
         FROM {series};
         INSERT INTO votes (user_id, post_id, created_at)
         SELECT {ann}, id, {now} FROM posts WHERE id % 2 = 0;",
        series = series(backend, 100),
        now = ago(backend, "0"),
    ))?;
    recount_votes(database)
}

/// 100 000 posts (by Ann, older than the first 100) and 1 000 000 votes by 1 000 voters.
pub(super) fn seed_big(database: &Database, ann: i64) -> anyhow::Result<()> {
    let backend = database.backend;
    let title = title();
    let created = ago(backend, "2000000 + s.n");
    let truth = if backend == "sqlite" { "1" } else { "TRUE" };
    let hash = database.execute(&format!(
        "SELECT password_hash FROM users WHERE id = {ann};"
    ))?;
    let hash = hash.trim();
    database.execute(&format!(
        "INSERT INTO users (email, email_key, password_hash, is_active, is_admin, created_at)
         SELECT 'voter' || s.n || '@example.com', 'voter' || s.n || '@example.com', '{hash}',
                {truth}, {falsity}, {now}
         FROM {voters};
         INSERT INTO posts (owner_id, title, title_key, content, published, created_at, updated_at)
         SELECT {ann}, {title}, lower({title}), 'Seeded for the bench.', {truth}, {created}, {created}
         FROM {posts};",
        falsity = if backend == "sqlite" { "0" } else { "FALSE" },
        now = ago(backend, "0"),
        voters = series(backend, BIG_VOTERS),
        posts = series(backend, BIG_POSTS),
    ))?;
    // Voter v votes on the posts first + (v + 100 k) mod BIG_POSTS for k < VOTES_PER_VOTER:
    // a thousand distinct posts each.
    let first_post = database
        .execute("SELECT MIN(id) FROM posts WHERE title LIKE 'Post % about %' AND id > 100;")?;
    let first_voter = database.execute("SELECT MIN(id) FROM users WHERE email LIKE 'voter%';")?;
    let (first_post, first_voter) = (first_post.trim(), first_voter.trim());
    let pairs = if backend == "sqlite" {
        format!(
            "(WITH RECURSIVE v(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM v WHERE n < {voters}),
                            k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < {per})
              SELECT v.n AS voter, k.n AS k FROM v, k)",
            voters = BIG_VOTERS - 1,
            per = VOTES_PER_VOTER - 1
        )
    } else {
        format!(
            "(SELECT v AS voter, k FROM generate_series(0, {}) v, generate_series(0, {}) k)",
            BIG_VOTERS - 1,
            VOTES_PER_VOTER - 1
        )
    };
    database.execute(&format!(
        "INSERT INTO votes (user_id, post_id, created_at)
         SELECT {first_voter} + p.voter, {first_post} + (p.voter + 100 * p.k) % {BIG_POSTS}, {now}
         FROM {pairs} AS p;",
        now = ago(backend, "0"),
    ))?;
    recount_votes(database)?;
    database.execute("ANALYZE;")?;
    Ok(())
}

/// The time `seconds` ago, as each database stores times.
fn ago(backend: &str, seconds: &str) -> String {
    if backend == "sqlite" {
        format!(
            "strftime('%Y-%m-%dT%H:%M:%f', 'now', '-' || ({seconds}) || ' seconds') || '+00:00'"
        )
    } else {
        format!("now() - ({seconds}) * interval '1 second'")
    }
}

/// A sequence of integers 1..=n as a row source named `s(n)`.
fn series(backend: &str, n: u32) -> String {
    if backend == "sqlite" {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             SELECT n FROM s) AS s"
        )
    } else {
        format!("generate_series(1, {n}) AS s(n)")
    }
}

/// Brings the vote counts kept with posts (if the schema keeps them) up to date after votes
/// were written directly.
fn recount_votes(database: &Database) -> anyhow::Result<()> {
    let has_column = if database.backend == "sqlite" {
        database.execute("SELECT COUNT(*) FROM pragma_table_info('posts') WHERE name = 'votes';")?
    } else {
        database.execute(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_name = 'posts' AND column_name = 'votes';",
        )?
    };
    if has_column.trim() == "1" {
        database.execute(
            "UPDATE posts SET votes = (SELECT COUNT(*) FROM votes v WHERE v.post_id = posts.id);",
        )?;
    }
    Ok(())
}
