//! [`VoteRepository`]: one vote per user and post, enforced by the primary key.

use async_trait::async_trait;
use warden_domain::{
    accounts::UserId,
    posts::{AddVoteError, PostId, VoteRepository},
};

use super::macros::on_writer;
use super::{DbResultExt, Store, db_error, now};

#[async_trait]
impl VoteRepository for Store {
    #[tracing::instrument(skip(self), err)]
    async fn add_vote(&self, user: UserId, post: PostId) -> Result<(), AddVoteError> {
        const SQL: &str = "INSERT INTO votes (user_id, post_id, created_at) VALUES ($1, $2, $3)";
        let inserted = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(post.get())
                .bind(now())
                .execute(pool)
                .await
                .map(drop)
        });
        match inserted {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(AddVoteError::AlreadyVoted { user, post })
            }
            Err(sqlx::Error::Database(err)) if err.is_foreign_key_violation() => {
                Err(AddVoteError::PostNotFound(post))
            }
            Err(err) => Err(db_error(err, "cannot insert vote").into()),
        }
    }

    #[tracing::instrument(skip(self), err)]
    async fn remove_vote(&self, user: UserId, post: PostId) -> anyhow::Result<bool> {
        const SQL: &str = "DELETE FROM votes WHERE user_id = $1 AND post_id = $2";
        let deleted = on_writer!(self, |pool| {
            sqlx::query(SQL)
                .bind(user.get())
                .bind(post.get())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context("cannot delete vote")?;
        Ok(deleted > 0)
    }
}
