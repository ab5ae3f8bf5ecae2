//! [`PostRepository`]: posts with their owners and vote counts, and the list query.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use warden_domain::{
    accounts::UserId,
    posts::{Post, PostContent, PostDraft, PostId, PostList, PostQuery, PostRepository, PostTitle},
};

use super::macros::{on_pool, on_writer};
use super::users::JoinedUserRow;
use super::{DbResultExt, Pool, Store, count_to_i64, now};

/// The columns of a post with its owner and vote count. Macros, not consts, so that `concat!`
/// can build whole queries from them as `&'static str`s.
macro_rules! post_columns {
    () => {
        concat!(
            "SELECT p.id, p.title, p.content, p.published, p.created_at, p.updated_at, \
                u.id AS owner_id, ",
            $crate::store::users::joined_user_columns!(),
            ", p.votes "
        )
    };
}

/// The tables those columns come from.
macro_rules! post_tables {
    () => {
        "FROM posts p JOIN users u ON u.id = p.owner_id "
    };
}

/// The posts viewer `$1` may see: every published post and their own.
macro_rules! visible {
    () => {
        "(p.published OR p.owner_id = $1)"
    };
}

/// The list's page (`$2` posts from the `$3`-th, newest first) and the capped count of all its
/// matches, in one statement, for each way of finding the matches. The count is an
/// uncorrelated subquery, computed once. `$4` is the search, as each query wants it.
macro_rules! list_query {
    ($from:expr, $filter:expr) => {
        concat!(
            post_columns!(),
            ", (SELECT COUNT(*) FROM (SELECT 1 FROM ",
            $from,
            " WHERE ",
            visible!(),
            $filter,
            " LIMIT ",
            max_counted!(),
            ") AS counted) AS total ",
            "FROM ",
            $from,
            " JOIN users u ON u.id = p.owner_id ",
            "WHERE ",
            visible!(),
            $filter,
            " ORDER BY p.created_at DESC, p.id DESC LIMIT $2 OFFSET $3"
        )
    };
}

/// [`warden_domain::posts::MAX_COUNTED_POSTS`], for `concat!`.
macro_rules! max_counted {
    () => {
        "1000"
    };
}

/// The whole list, searched or not, and how each database searches titles: through an index
/// of the titles' three-character substrings (PostgreSQL's pg_trgm, SQLite's FTS5 trigram
/// table), for searches of three characters or more. Shorter ones cannot use such an index and
/// scan the titles.
mod list {
    /// No search.
    pub(super) const ALL: &str = list_query!("posts p", "");
    /// PostgreSQL: `$4` is a LIKE pattern, which the trigram index serves.
    pub(super) const POSTGRES_SEARCH: &str = list_query!("posts p", " AND p.title_key LIKE $4");
    /// SQLite, three characters or more: `$4` is an FTS5 phrase; the index drives.
    pub(super) const SQLITE_INDEXED_SEARCH: &str = list_query!(
        "posts_title_search s JOIN posts p ON p.id = s.rowid",
        " AND s.posts_title_search MATCH $4"
    );
    /// SQLite, one or two characters: `$4` is a LIKE pattern.
    pub(super) const SQLITE_SHORT_SEARCH: &str =
        list_query!("posts p", " AND p.title_key LIKE $4 ESCAPE '\\'");
}

#[derive(sqlx::FromRow)]
struct PostRow {
    id: i64,
    title: String,
    content: String,
    published: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    owner_id: i64,
    #[sqlx(flatten)]
    owner: JoinedUserRow,
    votes: i64,
}

impl TryFrom<PostRow> for Post {
    type Error = anyhow::Error;

    fn try_from(row: PostRow) -> anyhow::Result<Self> {
        let invalid = |what: &str| format!("post {} has an invalid stored {what}", row.id);
        Ok(Post {
            id: PostId::new(row.id),
            title: PostTitle::new(row.title).with_context(|| invalid("title"))?,
            content: PostContent::new(row.content).with_context(|| invalid("content"))?,
            published: row.published,
            created_at: row.created_at,
            updated_at: row.updated_at,
            owner: row.owner.into_user(row.owner_id)?,
            votes: u64::try_from(row.votes).context("negative vote count")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ListedPostRow {
    #[sqlx(flatten)]
    post: PostRow,
    /// How many posts match the whole query, whatever the page, up to the cap.
    total: i64,
}

/// A LIKE pattern that matches keys containing `key`, with LIKE's wildcards in it escaped by
/// a backslash (PostgreSQL's default escape; SQLite's query names it).
fn like_pattern(key: &str) -> String {
    let mut pattern = String::with_capacity(key.len() + 2);
    pattern.push('%');
    for c in key.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// An FTS5 query for the rows whose key contains `key` (three characters or more): one phrase,
/// with its double quotes doubled, as FTS5's syntax wants.
fn fts_phrase(key: &str) -> String {
    format!("\"{}\"", key.replace('"', "\"\""))
}

impl Store {
    /// One page of the list, each row with the capped count of every match.
    async fn list_page(
        &self,
        query: &PostQuery,
        limit: i64,
        skip: i64,
    ) -> Result<Vec<ListedPostRow>, anyhow::Error> {
        let viewer = query.viewer.get();
        // Titles' keys are lower-cased by the application; so is the search.
        let key = query
            .search
            .as_ref()
            .map(|search| search.as_str().to_lowercase());
        let rows = match (&self.pool, key) {
            (_, None) => on_pool!(self, |pool| {
                sqlx::query_as::<_, ListedPostRow>(list::ALL)
                    .bind(viewer)
                    .bind(limit)
                    .bind(skip)
                    .fetch_all(pool)
                    .await
            }),
            (Pool::Postgres { .. }, Some(key)) => on_pool!(self, |pool| {
                sqlx::query_as::<_, ListedPostRow>(list::POSTGRES_SEARCH)
                    .bind(viewer)
                    .bind(limit)
                    .bind(skip)
                    .bind(like_pattern(&key))
                    .fetch_all(pool)
                    .await
            }),
            (Pool::Sqlite { readers, .. }, Some(key)) => {
                let (sql, search) = if key.chars().count() >= 3 {
                    (list::SQLITE_INDEXED_SEARCH, fts_phrase(&key))
                } else {
                    (list::SQLITE_SHORT_SEARCH, like_pattern(&key))
                };
                sqlx::query_as::<_, ListedPostRow>(sql)
                    .bind(viewer)
                    .bind(limit)
                    .bind(skip)
                    .bind(search)
                    .fetch_all(readers)
                    .await
            }
        };
        rows.db_context("cannot list posts")
    }
}

#[async_trait]
impl PostRepository for Store {
    #[tracing::instrument(skip(self, draft), err)]
    async fn create_post(&self, owner: UserId, draft: &PostDraft) -> anyhow::Result<Post> {
        const SQL: &str = "INSERT INTO posts \
                           (owner_id, title, title_key, content, published, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
        let title_key = draft.title.as_str().to_lowercase();
        let id: i64 = on_writer!(self, |pool| {
            sqlx::query_scalar(SQL)
                .bind(owner.get())
                .bind(draft.title.as_str())
                .bind(&title_key)
                .bind(draft.content.as_str())
                .bind(draft.published)
                .bind(now())
                .fetch_one(pool)
                .await
        })
        .db_context("cannot insert post")?;
        self.find_post(PostId::new(id))
            .await?
            .context("the post just inserted is gone")
    }

    #[tracing::instrument(skip(self), err)]
    async fn find_post(&self, id: PostId) -> anyhow::Result<Option<Post>> {
        const SQL: &str = concat!(post_columns!(), post_tables!(), "WHERE p.id = $1");
        let row = on_pool!(self, |pool| {
            sqlx::query_as::<_, PostRow>(SQL)
                .bind(id.get())
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read post")?;
        row.map(Post::try_from).transpose()
    }

    #[tracing::instrument(skip(self), err)]
    async fn list_posts(&self, query: &PostQuery) -> anyhow::Result<PostList> {
        let limit = i64::from(query.page.limit());
        let skip = count_to_i64(query.page.skip())?;
        let mut rows = self.list_page(query, limit, skip).await?;
        let total = match rows.first() {
            Some(row) => row.total,
            None if skip == 0 => 0,
            // A page past the end has no row to carry the count: the first page has.
            None => self
                .list_page(query, 1, 0)
                .await?
                .first()
                .map_or(0, |row| row.total),
        };
        Ok(PostList {
            posts: rows
                .drain(..)
                .map(|row| Post::try_from(row.post))
                .collect::<anyhow::Result<_>>()?,
            total: u64::try_from(total).context("negative post count")?,
        })
    }

    #[tracing::instrument(skip(self, draft), err)]
    async fn replace_post(&self, id: PostId, draft: &PostDraft) -> anyhow::Result<Option<Post>> {
        const SQL: &str = "UPDATE posts \
                           SET title = $2, title_key = $3, content = $4, published = $5, \
                               updated_at = $6 \
                           WHERE id = $1";
        let title_key = draft.title.as_str().to_lowercase();
        let updated = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .bind(draft.title.as_str())
                .bind(&title_key)
                .bind(draft.content.as_str())
                .bind(draft.published)
                .bind(now())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot update post")?;
        if updated == 0 {
            return Ok(None);
        }
        self.find_post(id).await
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_post(&self, id: PostId) -> anyhow::Result<bool> {
        const SQL: &str = "DELETE FROM posts WHERE id = $1";
        let deleted = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(id.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete post")?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sql_count_cap_is_the_domains() {
        assert_eq!(
            max_counted!(),
            warden_domain::posts::MAX_COUNTED_POSTS.to_string()
        );
    }

    #[test]
    fn searches_become_literal_patterns_and_phrases() {
        assert_eq!(super::like_pattern(r"50%_\"), r"%50\%\_\\%");
        assert_eq!(super::fts_phrase(r#"say "hi""#), r#""say ""hi""""#);
    }
}
