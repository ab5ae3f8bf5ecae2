//! What posts and votes need stored.

use async_trait::async_trait;

use crate::{
    accounts::UserId,
    posts::{Post, PostDraft, PostId, PostList, PostQuery},
};

/// Stores posts.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PostRepository: Send + Sync + 'static {
    /// Stores a new post owned by `owner` and returns it, with no votes.
    ///
    /// # Errors
    ///
    /// Any failure, including an owner that does not exist; then nothing is stored.
    async fn create_post(&self, owner: UserId, draft: &PostDraft) -> anyhow::Result<Post>;

    /// The post with this id, whoever may see it, or `None`.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient), or a stored row that
    /// does not pass the domain's validation.
    async fn find_post(&self, id: PostId) -> anyhow::Result<Option<Post>>;

    /// One page of the posts `query.viewer` may see (every published post and their own
    /// unpublished ones) whose title contains `query.search` ignoring case, newest first (ties
    /// broken by id, newest first), and how many such posts there are in all, counted up to
    /// [`crate::posts::MAX_COUNTED_POSTS`]. One query for the page, however many posts it holds.
    ///
    /// # Errors
    ///
    /// As [`PostRepository::find_post`].
    async fn list_posts(&self, query: &PostQuery) -> anyhow::Result<PostList>;

    /// Replaces the post's title, content and published flag, and sets its update time to now.
    /// Returns the post as it is now, or `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// As [`PostRepository::find_post`]; nothing is changed then.
    async fn replace_post(&self, id: PostId, draft: &PostDraft) -> anyhow::Result<Option<Post>>;

    /// Deletes the post and its votes. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient); nothing is deleted then.
    async fn delete_post(&self, id: PostId) -> anyhow::Result<bool>;
}

/// Why storing a vote failed.
#[derive(Debug, thiserror::Error)]
pub enum AddVoteError {
    /// The user has already voted on the post (also when two votes race: exactly one wins).
    #[error("user {user} has already voted on post {post}")]
    AlreadyVoted { user: UserId, post: PostId },
    /// The post does not exist (any more).
    #[error("post {0} does not exist")]
    PostNotFound(PostId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Stores votes: at most one per user and post.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait VoteRepository: Send + Sync + 'static {
    /// Records `user`'s vote on `post`.
    ///
    /// # Errors
    ///
    /// [`AddVoteError::AlreadyVoted`] if there is one already, [`AddVoteError::PostNotFound`] if
    /// the post does not exist; a failure of the storage is `Unknown`.
    async fn add_vote(&self, user: UserId, post: PostId) -> Result<(), AddVoteError>;

    /// Takes back `user`'s vote on `post`. Returns whether there was one.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn remove_vote(&self, user: UserId, post: PostId) -> anyhow::Result<bool>;
}
