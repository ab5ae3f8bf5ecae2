//! Posts and votes (contract section 6). The rules of who sees and changes what live in the
//! domain's `PostService`; this maps its outcomes to the contract's statuses and messages.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::posts::{
    ChangePostError, GetPostError, Post, PostContent, PostDraft, PostId, PostQuery, PostTitle,
    SearchTerm, VoteDirection, VoteError,
};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorAnswer, ErrorBody, detail_of};
use super::security::{ApiScope, Caller};
use super::users::UserOut;
use crate::api::state::AppState;

/// What a post says, to create or replace one.
#[derive(Debug, Object)]
#[oai(example)]
struct PostIn {
    /// 1 to 300 characters, not only white space.
    #[oai(validator(min_length = 1, max_length = 300))]
    title: String,
    /// 1 to 10 000 characters, not only white space.
    #[oai(validator(min_length = 1, max_length = 10000))]
    content: String,
    /// Unpublished posts are seen by their owner only.
    #[oai(default = "published_by_default")]
    published: bool,
}

fn published_by_default() -> bool {
    true
}

impl Example for PostIn {
    fn example() -> Self {
        Self {
            title: "Hello, Warden".into(),
            content: "My first post.".into(),
            published: true,
        }
    }
}

impl PostIn {
    /// The domain's checks, which go beyond the schema's (a title of spaces is empty).
    fn into_draft(self) -> Result<PostDraft, ApiError> {
        Ok(PostDraft {
            title: PostTitle::new(self.title)
                .map_err(|err| ApiError::invalid(format!("title: {err}")))?,
            content: PostContent::new(self.content)
                .map_err(|err| ApiError::invalid(format!("content: {err}")))?,
            published: self.published,
        })
    }
}

/// A post, with its owner and its number of votes.
#[derive(Debug, Object)]
struct PostOut {
    id: i64,
    title: String,
    content: String,
    published: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    owner_id: i64,
    owner: UserOut,
    /// How many users voted for the post.
    votes: u64,
}

impl From<Post> for PostOut {
    fn from(post: Post) -> Self {
        Self {
            id: post.id.get(),
            title: post.title.as_str().to_owned(),
            content: post.content.as_str().to_owned(),
            published: post.published,
            created_at: post.created_at,
            updated_at: post.updated_at,
            owner_id: post.owner.id.get(),
            owner: post.owner.into(),
            votes: post.votes,
        }
    }
}

/// A vote, or taking one back.
#[derive(Debug, Object)]
#[oai(example)]
struct VoteIn {
    post_id: i64,
    /// 1 adds your vote, 0 takes it back.
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    dir: i64,
}

impl Example for VoteIn {
    fn example() -> Self {
        Self { post_id: 1, dir: 1 }
    }
}

/// What a vote did.
#[derive(Debug, Object)]
struct VoteOut {
    /// `successfully added vote` or `successfully deleted vote`.
    message: String,
}

#[derive(Debug, ApiResponse)]
enum ListPostsResponse {
    /// One page of posts, newest first. `X-Total-Count` says how many match in all, counted up
    /// to 1000: `1000` means at least that many.
    #[oai(status = 200)]
    Ok(Json<Vec<PostOut>>, #[oai(header = "X-Total-Count")] u64),
}

#[derive(Debug, ApiResponse)]
enum GetPostResponse {
    /// The post.
    #[oai(status = 200)]
    Ok(Json<PostOut>),
    /// No such post, or somebody else's unpublished one.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum CreatePostResponse {
    /// The post, owned by the caller.
    #[oai(status = 201)]
    Created(Json<PostOut>),
}

#[derive(Debug, ApiResponse)]
enum ReplacePostResponse {
    /// The post as it is now.
    #[oai(status = 200)]
    Ok(Json<PostOut>),
    /// No such post, or somebody else's unpublished one.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum DeletePostResponse {
    /// The post and its votes are gone.
    #[oai(status = 204)]
    Deleted,
    /// No such post, or somebody else's unpublished one.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum VoteResponse {
    /// The vote was added (`dir` 1) or taken back (`dir` 0).
    #[oai(status = 201)]
    Done(Json<VoteOut>),
    /// No such post or one the caller cannot see, or no vote to take back; `detail` says
    /// which.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The caller has already voted on this post.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
}

#[derive(Debug, Default)]
pub struct PostsApi;

#[OpenApi(tag = "ApiTags::Posts")]
impl PostsApi {
    /// List posts
    ///
    /// Every published post and your own unpublished ones, newest first.
    #[oai(path = "/posts", method = "get", operation_id = "list_posts")]
    async fn list(
        &self,
        #[oai(scope = "ApiScope::POSTS_READ")] auth: Caller,
        state: Data<&AppState>,
        /// How many posts to return, 1 to 100.
        #[oai(
            default = "super::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// How many posts to skip.
        #[oai(default, validator(minimum(value = "0")))]
        skip: Query<i64>,
        /// Only posts whose title contains this, ignoring case. One line: no control
        /// characters and no bidirectional embeddings or overrides (see the text model).
        #[oai(validator(
            max_length = 300,
            pattern = r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]*$"
        ))]
        search: Query<Option<String>>,
    ) -> Result<ListPostsResponse, ApiError> {
        let page = super::page(limit.0, skip.0)?;
        let search = SearchTerm::new(search.0.as_deref().unwrap_or_default())
            .map_err(|err| ApiError::invalid(format!("search: {err}")))?;
        let query = PostQuery {
            viewer: auth.principal().user.id,
            search,
            page,
        };
        let list = state.posts.list(&query).await?;
        Ok(ListPostsResponse::Ok(
            Json(list.posts.into_iter().map(PostOut::from).collect()),
            list.total,
        ))
    }

    /// Get a post
    #[oai(path = "/posts/:id", method = "get", operation_id = "get_post")]
    async fn get(
        &self,
        #[oai(scope = "ApiScope::POSTS_READ")] auth: Caller,
        state: Data<&AppState>,
        /// The post's id.
        id: Path<i64>,
    ) -> Result<GetPostResponse, ApiError> {
        match state
            .posts
            .get(auth.principal().user.id, PostId::new(id.0))
            .await
        {
            Ok(post) => Ok(GetPostResponse::Ok(Json(post.into()))),
            Err(err) => err.answer(),
        }
    }

    /// Create a post
    ///
    /// The post is owned by the caller.
    #[oai(path = "/posts", method = "post", operation_id = "create_post")]
    async fn create(
        &self,
        #[oai(scope = "ApiScope::POSTS_WRITE")] auth: Caller,
        state: Data<&AppState>,
        body: JsonBody<PostIn>,
    ) -> Result<CreatePostResponse, ApiError> {
        let draft = body.0.into_draft()?;
        let post = state.posts.create(auth.principal().user.id, &draft).await?;
        tracing::info!(post_id = %post.id, "post created");
        Ok(CreatePostResponse::Created(Json(post.into())))
    }

    /// Replace a post
    ///
    /// Only the owner may replace a post.
    #[oai(path = "/posts/:id", method = "put", operation_id = "replace_post")]
    async fn replace(
        &self,
        #[oai(scope = "ApiScope::POSTS_WRITE")] auth: Caller,
        state: Data<&AppState>,
        /// The post's id.
        id: Path<i64>,
        body: JsonBody<PostIn>,
    ) -> Result<ReplacePostResponse, ApiError> {
        let draft = body.0.into_draft()?;
        match state
            .posts
            .replace(auth.principal().user.id, PostId::new(id.0), &draft)
            .await
        {
            Ok(post) => Ok(ReplacePostResponse::Ok(Json(post.into()))),
            Err(err) => err.answer(),
        }
    }

    /// Delete a post
    ///
    /// Only the owner may delete a post. Its votes go with it.
    #[oai(path = "/posts/:id", method = "delete", operation_id = "delete_post")]
    async fn delete(
        &self,
        #[oai(scope = "ApiScope::POSTS_WRITE")] auth: Caller,
        state: Data<&AppState>,
        /// The post's id.
        id: Path<i64>,
    ) -> Result<DeletePostResponse, ApiError> {
        match state
            .posts
            .delete(auth.principal().user.id, PostId::new(id.0))
            .await
        {
            Ok(()) => Ok(DeletePostResponse::Deleted),
            Err(err) => err.answer(),
        }
    }

    /// Vote on a post
    ///
    /// `dir` 1 adds your vote, `dir` 0 takes it back. One vote per user and post.
    #[oai(path = "/vote", method = "post", operation_id = "vote")]
    async fn vote(
        &self,
        #[oai(scope = "ApiScope::POSTS_WRITE")] auth: Caller,
        state: Data<&AppState>,
        body: JsonBody<VoteIn>,
    ) -> Result<VoteResponse, ApiError> {
        let VoteIn { post_id, dir } = body.0;
        let (direction, message) = match dir {
            1 => (VoteDirection::Add, "successfully added vote"),
            0 => (VoteDirection::Remove, "successfully deleted vote"),
            _ => return Err(ApiError::invalid("dir: must be 0 or 1")),
        };
        match state
            .posts
            .vote(auth.principal().user.id, PostId::new(post_id), direction)
            .await
        {
            Ok(()) => Ok(VoteResponse::Done(Json(VoteOut {
                message: message.into(),
            }))),
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<GetPostResponse> for GetPostError {
    fn answer(self) -> Result<GetPostResponse, ApiError> {
        match self {
            Self::NotFound(_) => Ok(GetPostResponse::NotFound(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<ReplacePostResponse> for ChangePostError {
    fn answer(self) -> Result<ReplacePostResponse, ApiError> {
        match self {
            Self::NotFound(_) => Ok(ReplacePostResponse::NotFound(detail_of(&self))),
            Self::Forbidden(_) => Err(ApiError::not_owner(&self)),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<DeletePostResponse> for ChangePostError {
    fn answer(self) -> Result<DeletePostResponse, ApiError> {
        match self {
            Self::NotFound(_) => Ok(DeletePostResponse::NotFound(detail_of(&self))),
            Self::Forbidden(_) => Err(ApiError::not_owner(&self)),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<VoteResponse> for VoteError {
    fn answer(self) -> Result<VoteResponse, ApiError> {
        match self {
            Self::PostNotFound(_) | Self::VoteNotFound => {
                Ok(VoteResponse::NotFound(detail_of(&self)))
            }
            Self::AlreadyVoted { .. } => Ok(VoteResponse::Conflict(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}
