//! [`PostRepository`]: posts with their owners and vote counts, and the list query.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use warden_domain::ports::PostRepository;
use warden_domain::{
    Post, PostContent, PostDraft, PostId, PostList, PostQuery, PostTitle, User, UserId,
};

use super::users::UserRow;
use super::{DbResultExt, Pool, Store, count_to_i64, now};

/// The columns of a post with its owner and vote count. Macros, not consts, so that `concat!`
/// can build whole queries from them as `&'static str`s.
macro_rules! post_columns {
    () => {
        "SELECT p.id, p.title, p.content, p.published, p.created_at, p.updated_at, \
                u.id AS owner_id, u.email AS owner_email, u.is_active AS owner_is_active, \
                u.is_admin AS owner_is_admin, u.created_at AS owner_created_at, \
                (SELECT COUNT(*) FROM votes v WHERE v.post_id = p.id) AS votes "
    };
}

/// The tables those columns come from.
macro_rules! post_tables {
    () => {
        "FROM posts p JOIN users u ON u.id = p.owner_id "
    };
}

/// Which posts a list shows: those viewer `$1` may see, whose title matches LIKE pattern `$2`
/// (all of them when `$2` is NULL).
macro_rules! post_list_filter {
    () => {
        "WHERE (p.published OR p.owner_id = $1) \
           AND ($2 IS NULL OR p.title_key LIKE $2 ESCAPE '\\') "
    };
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
    owner_email: String,
    owner_is_active: bool,
    owner_is_admin: bool,
    owner_created_at: DateTime<Utc>,
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
            owner: User::try_from(UserRow {
                id: row.owner_id,
                email: row.owner_email,
                is_active: row.owner_is_active,
                is_admin: row.owner_is_admin,
                created_at: row.owner_created_at,
            })?,
            votes: u64::try_from(row.votes).context("negative vote count")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ListedPostRow {
    #[sqlx(flatten)]
    post: PostRow,
    /// How many posts match the whole query, whatever the page.
    total: i64,
}

/// A LIKE pattern that matches titles containing `search`, ignoring case: the search is
/// lower-cased as titles' keys are, and LIKE's wildcards in it are escaped.
fn title_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
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
        // The window function counts every match before LIMIT applies: page and total in one
        // query. Only a page past the end has no row to carry the total; then it is counted.
        const PAGE: &str = concat!(
            post_columns!(),
            ", COUNT(*) OVER () AS total ",
            post_tables!(),
            post_list_filter!(),
            "ORDER BY p.created_at DESC, p.id DESC LIMIT $3 OFFSET $4"
        );
        const COUNT: &str = concat!("SELECT COUNT(*) FROM posts p ", post_list_filter!());
        let viewer = query.viewer.get();
        let pattern = query.search.as_deref().map(title_pattern);
        let limit = i64::from(query.page.limit());
        let skip = count_to_i64(query.page.skip())?;
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, ListedPostRow>(PAGE)
                .bind(viewer)
                .bind(&pattern)
                .bind(limit)
                .bind(skip)
                .fetch_all(pool)
                .await
        })
        .db_context("cannot list posts")?;
        let total = match rows.first() {
            Some(row) => row.total,
            None if skip == 0 => 0,
            None => on_pool!(self, |pool| {
                sqlx::query_scalar::<_, i64>(COUNT)
                    .bind(viewer)
                    .bind(&pattern)
                    .fetch_one(pool)
                    .await
            })
            .db_context("cannot count posts")?,
        };
        Ok(PostList {
            posts: rows
                .into_iter()
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
