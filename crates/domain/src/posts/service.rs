//! Posts and votes: who may see, change and vote on what.
//!
//! The rules, all here rather than in handlers or SQL: everyone sees published posts; only the
//! owner sees an unpublished one, and to everyone else it does not exist (404, never 403, so
//! that its existence does not leak); only the owner may replace or delete a post (403 for
//! anybody else who can see it); one vote per user and post, on posts the voter can see.

use std::sync::Arc;

use crate::{
    accounts::UserId,
    error::Unknown,
    posts::{
        AddVoteError, Post, PostDraft, PostId, PostList, PostQuery, PostRepository, VoteDirection,
        VoteRepository,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum GetPostError {
    /// No such post, or one the viewer may not see.
    #[error("post with id: {0} was not found")]
    NotFound(PostId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Why replacing or deleting a post failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePostError {
    /// No such post, or one the caller may not see.
    #[error("post with id: {0} does not exist")]
    NotFound(PostId),
    /// The caller sees the post but does not own it.
    #[error("Not authorized to perform requested action")]
    Forbidden(PostId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    /// No such post, or one the voter may not see.
    #[error("Post with id: {0} does not exist")]
    PostNotFound(PostId),
    #[error("user {user} has already voted on post {post}")]
    AlreadyVoted { user: UserId, post: PostId },
    /// Taking back a vote that was never cast.
    #[error("Vote does not exist")]
    VoteNotFound,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// What [`PostService`] drives.
#[derive(Clone)]
pub struct PostPorts {
    pub posts: Arc<dyn PostRepository>,
    pub votes: Arc<dyn VoteRepository>,
}

crate::opaque_debug!(PostPorts);

#[derive(Clone)]
pub struct PostService {
    ports: PostPorts,
}

crate::opaque_debug!(PostService);

impl PostService {
    pub fn new(ports: PostPorts) -> Self {
        Self { ports }
    }

    pub async fn list(&self, query: &PostQuery) -> Result<PostList, Unknown> {
        Ok(self.ports.posts.list_posts(query).await?)
    }

    /// The post, if `viewer` may see it.
    pub async fn get(&self, viewer: UserId, id: PostId) -> Result<Post, GetPostError> {
        self.visible(viewer, id)
            .await?
            .ok_or(GetPostError::NotFound(id))
    }

    pub async fn create(&self, owner: UserId, draft: &PostDraft) -> Result<Post, Unknown> {
        Ok(self.ports.posts.create_post(owner, draft).await?)
    }

    /// Replaces `caller`'s post.
    pub async fn replace(
        &self,
        caller: UserId,
        id: PostId,
        draft: &PostDraft,
    ) -> Result<Post, ChangePostError> {
        self.check_owner(caller, id).await?;
        // The post may have been deleted since the check: then it does not exist.
        self.ports
            .posts
            .replace_post(id, draft)
            .await?
            .ok_or(ChangePostError::NotFound(id))
    }

    /// Deletes `caller`'s post, and its votes.
    pub async fn delete(&self, caller: UserId, id: PostId) -> Result<(), ChangePostError> {
        self.check_owner(caller, id).await?;
        if self.ports.posts.delete_post(id).await? {
            Ok(())
        } else {
            Err(ChangePostError::NotFound(id))
        }
    }

    /// Adds or takes back `voter`'s vote on a post they can see.
    pub async fn vote(
        &self,
        voter: UserId,
        post: PostId,
        direction: VoteDirection,
    ) -> Result<(), VoteError> {
        if self.visible(voter, post).await?.is_none() {
            return Err(VoteError::PostNotFound(post));
        }
        match direction {
            VoteDirection::Add => {
                self.ports
                    .votes
                    .add_vote(voter, post)
                    .await
                    .map_err(|err| match err {
                        AddVoteError::AlreadyVoted { user, post } => {
                            VoteError::AlreadyVoted { user, post }
                        }
                        AddVoteError::PostNotFound(post) => VoteError::PostNotFound(post),
                        AddVoteError::Unknown(err) => VoteError::Unknown(err),
                    })
            }
            VoteDirection::Remove => {
                if self.ports.votes.remove_vote(voter, post).await? {
                    Ok(())
                } else {
                    Err(VoteError::VoteNotFound)
                }
            }
        }
    }

    async fn visible(&self, viewer: UserId, id: PostId) -> anyhow::Result<Option<Post>> {
        Ok(self
            .ports
            .posts
            .find_post(id)
            .await?
            .filter(|post| post.is_visible_to(viewer)))
    }

    async fn check_owner(&self, caller: UserId, id: PostId) -> Result<(), ChangePostError> {
        match self.visible(caller, id).await? {
            None => Err(ChangePostError::NotFound(id)),
            Some(post) if !post.is_owned_by(caller) => Err(ChangePostError::Forbidden(id)),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use mockall::predicate::eq;

    use super::*;
    use crate::posts::{MockPostRepository, MockVoteRepository};
    use crate::{
        accounts::{EmailAddress, User},
        posts::{Page, PostContent, PostTitle},
    };

    const ANN: UserId = UserId::new(1);
    const BOB: UserId = UserId::new(2);
    const POST: PostId = PostId::new(10);

    fn user(id: UserId) -> User {
        User {
            id,
            email: EmailAddress::new(&format!("user{id}@example.com")).unwrap(),
            created_at: Utc::now(),
            is_active: true,
            is_admin: false,
            email_verified: false,
        }
    }

    fn draft(published: bool) -> PostDraft {
        PostDraft {
            title: PostTitle::new("Hello".into()).unwrap(),
            content: PostContent::new("World".into()).unwrap(),
            published,
        }
    }

    /// Ann's post, published or not.
    fn anns_post(published: bool) -> Post {
        let draft = draft(published);
        Post {
            id: POST,
            title: draft.title,
            content: draft.content,
            published,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            owner: user(ANN),
            votes: 0,
        }
    }

    /// A service whose repository holds `post` (or nothing) and expects nothing else.
    fn holding(post: Option<Post>) -> (MockPostRepository, MockVoteRepository) {
        let mut posts = MockPostRepository::new();
        posts
            .expect_find_post()
            .with(eq(POST))
            .returning(move |_| Ok(post.clone()));
        posts.expect_replace_post().never();
        posts.expect_delete_post().never();
        let mut votes = MockVoteRepository::new();
        votes.expect_add_vote().never();
        votes.expect_remove_vote().never();
        (posts, votes)
    }

    fn service((posts, votes): (MockPostRepository, MockVoteRepository)) -> PostService {
        PostService::new(PostPorts {
            posts: Arc::new(posts),
            votes: Arc::new(votes),
        })
    }

    #[tokio::test]
    async fn everyone_sees_a_published_post() {
        let service = service(holding(Some(anns_post(true))));
        assert_eq!(service.get(BOB, POST).await.unwrap().id, POST);
    }

    #[tokio::test]
    async fn only_the_owner_sees_an_unpublished_post() {
        let service = service(holding(Some(anns_post(false))));
        assert_eq!(service.get(ANN, POST).await.unwrap().id, POST);
        let err = service.get(BOB, POST).await.unwrap_err();
        assert!(
            matches!(err, GetPostError::NotFound(id) if id == POST),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_post_is_not_found() {
        let service = service(holding(None));
        let err = service.get(ANN, POST).await.unwrap_err();
        assert!(matches!(err, GetPostError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn the_owner_replaces_their_post() {
        let (mut posts, votes) = holding(Some(anns_post(true)));
        posts.checkpoint();
        posts
            .expect_find_post()
            .returning(|_| Ok(Some(anns_post(true))));
        posts
            .expect_replace_post()
            .with(eq(POST), eq(draft(false)))
            .times(1)
            .returning(|_, _| Ok(Some(anns_post(false))));
        let service = service((posts, votes));

        let replaced = service.replace(ANN, POST, &draft(false)).await.unwrap();

        assert!(!replaced.published);
    }

    #[tokio::test]
    async fn another_user_may_not_replace_or_delete_a_visible_post() {
        let service = service(holding(Some(anns_post(true))));
        let err = service.replace(BOB, POST, &draft(true)).await.unwrap_err();
        assert!(matches!(err, ChangePostError::Forbidden(_)), "{err:?}");
        let err = service.delete(BOB, POST).await.unwrap_err();
        assert!(matches!(err, ChangePostError::Forbidden(_)), "{err:?}");
    }

    #[tokio::test]
    async fn another_users_unpublished_post_does_not_exist_for_changes() {
        let service = service(holding(Some(anns_post(false))));
        let err = service.replace(BOB, POST, &draft(true)).await.unwrap_err();
        assert!(matches!(err, ChangePostError::NotFound(_)), "{err:?}");
        let err = service.delete(BOB, POST).await.unwrap_err();
        assert!(matches!(err, ChangePostError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn changing_a_missing_post_is_not_found() {
        let service = service(holding(None));
        let err = service.delete(ANN, POST).await.unwrap_err();
        assert!(matches!(err, ChangePostError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn the_owner_deletes_their_post() {
        let (mut posts, votes) = holding(Some(anns_post(false)));
        posts.checkpoint();
        posts
            .expect_find_post()
            .returning(|_| Ok(Some(anns_post(false))));
        posts
            .expect_delete_post()
            .with(eq(POST))
            .times(1)
            .returning(|_| Ok(true));
        service((posts, votes)).delete(ANN, POST).await.unwrap();
    }

    #[tokio::test]
    async fn a_post_deleted_between_check_and_delete_is_not_found() {
        let (mut posts, votes) = holding(Some(anns_post(true)));
        posts.checkpoint();
        posts
            .expect_find_post()
            .returning(|_| Ok(Some(anns_post(true))));
        posts.expect_delete_post().returning(|_| Ok(false));
        let err = service((posts, votes)).delete(ANN, POST).await.unwrap_err();
        assert!(matches!(err, ChangePostError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn voting_adds_one_vote_per_user() {
        let (posts, mut votes) = holding(Some(anns_post(true)));
        votes.checkpoint();
        votes
            .expect_add_vote()
            .with(eq(BOB), eq(POST))
            .times(1)
            .returning(|_, _| Ok(()));
        let service = service((posts, votes));
        service.vote(BOB, POST, VoteDirection::Add).await.unwrap();
    }

    #[tokio::test]
    async fn voting_twice_is_a_conflict() {
        let (posts, mut votes) = holding(Some(anns_post(true)));
        votes.checkpoint();
        votes
            .expect_add_vote()
            .returning(|user, post| Err(AddVoteError::AlreadyVoted { user, post }));
        let err = service((posts, votes))
            .vote(BOB, POST, VoteDirection::Add)
            .await
            .unwrap_err();
        assert!(
            matches!(err, VoteError::AlreadyVoted { user, post } if user == BOB && post == POST),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn taking_back_a_vote_that_was_never_cast_is_not_found() {
        let (posts, mut votes) = holding(Some(anns_post(true)));
        votes.checkpoint();
        votes.expect_remove_vote().returning(|_, _| Ok(false));
        let err = service((posts, votes))
            .vote(BOB, POST, VoteDirection::Remove)
            .await
            .unwrap_err();
        assert!(matches!(err, VoteError::VoteNotFound), "{err:?}");
    }

    #[tokio::test]
    async fn nobody_votes_on_a_post_they_cannot_see() {
        let service = service(holding(Some(anns_post(false))));
        let err = service
            .vote(BOB, POST, VoteDirection::Add)
            .await
            .unwrap_err();
        assert!(matches!(err, VoteError::PostNotFound(_)), "{err:?}");

        let service = super::tests::service(holding(None));
        let err = service
            .vote(BOB, POST, VoteDirection::Remove)
            .await
            .unwrap_err();
        assert!(matches!(err, VoteError::PostNotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn listing_passes_the_query_to_the_repository() {
        let query = PostQuery {
            viewer: BOB,
            search: crate::posts::SearchTerm::new("hello").unwrap(),
            page: Page::new(10, 20).unwrap(),
        };
        let mut posts = MockPostRepository::new();
        posts
            .expect_list_posts()
            .with(eq(query.clone()))
            .returning(|_| {
                Ok(PostList {
                    posts: vec![anns_post(true)],
                    total: 21,
                })
            });
        let service = PostService::new(PostPorts {
            posts: Arc::new(posts),
            votes: Arc::new(MockVoteRepository::new()),
        });

        let list = service.list(&query).await.unwrap();

        assert_eq!(list.total, 21);
        assert_eq!(list.posts.len(), 1);
    }
}
