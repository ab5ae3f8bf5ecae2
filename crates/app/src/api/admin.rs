//! User administration (contract section 5), for tokens with the `admin` scope. Only admin
//! accounts are granted it, and the first admin is made on the command line.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::accounts::{EndSessionsError, UpdateUserError, UserFlags, UserId};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorAnswer, ErrorBody, detail_of};
use super::security::{ApiScope, Caller};
use super::users::UserMe;
use crate::api::state::AppState;

/// Changes to an account's status; a field left out stays as it is.
#[derive(Debug, Object)]
struct AdminUserUpdate {
    /// `false` disables the account: it cannot log in, and all its sessions end at once.
    is_active: Option<bool>,
    /// Admins may be granted the `admin` scope.
    is_admin: Option<bool>,
}

#[derive(Debug, ApiResponse)]
enum ListUsersResponse {
    /// One page of users, in id order.
    #[oai(status = 200)]
    Ok(Json<Vec<UserMe>>),
}

#[derive(Debug, ApiResponse)]
enum UpdateUserResponse {
    /// The user as it is now.
    #[oai(status = 200)]
    Ok(Json<UserMe>),
    /// An admin tried to disable or demote themself, or the change would leave no active
    /// admin (`at least one active admin must remain`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// No user has this id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum EndSessionsResponse {
    /// Every session of the user is ended: all their tokens stop working at once.
    #[oai(status = 204)]
    Ended,
    /// No user has this id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, Default)]
pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    #[oai(path = "/admin/users", method = "get", operation_id = "list_users")]
    async fn list(
        &self,
        #[oai(scope = "ApiScope::ADMIN")] _auth: Caller,
        state: Data<&AppState>,
        /// How many users to return, 1 to 100.
        #[oai(
            default = "super::default_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// How many users to skip.
        #[oai(default, validator(minimum(value = "0")))]
        skip: Query<i64>,
    ) -> Result<ListUsersResponse, ApiError> {
        let page = super::page(limit.0, skip.0)?;
        let users = state.admin.list_users(page).await?;
        Ok(ListUsersResponse::Ok(Json(
            users.into_iter().map(UserMe::from).collect(),
        )))
    }

    /// Enable, disable, promote or demote a user
    ///
    /// Disabling ends all of the user's sessions at once. Admins cannot disable or demote
    /// themselves, and no change may leave the service without an active admin (409
    /// `at least one active admin must remain`: of two admins demoting each other at once, one
    /// is refused).
    #[oai(
        path = "/admin/users/:id",
        method = "patch",
        operation_id = "update_user"
    )]
    async fn update(
        &self,
        #[oai(scope = "ApiScope::ADMIN")] auth: Caller,
        state: Data<&AppState>,
        /// The user's id.
        id: Path<i64>,
        body: JsonBody<AdminUserUpdate>,
    ) -> Result<UpdateUserResponse, ApiError> {
        let admin = auth.principal();
        let flags = UserFlags {
            is_active: body.0.is_active,
            is_admin: body.0.is_admin,
        };
        match state
            .admin
            .update_user(admin, UserId::new(id.0), flags)
            .await
        {
            Ok(user) => {
                tracing::info!(user_id = %user.id, ?flags, admin_id = %admin.user.id, "user updated");
                Ok(UpdateUserResponse::Ok(Json(user.into())))
            }
            Err(err) => err.answer(),
        }
    }

    /// End all of a user's sessions
    ///
    /// Logs the user out everywhere: all their access and refresh tokens stop working at once.
    /// The account stays active; they may log in again. Not for your own account (403): end
    /// your other sessions with `DELETE /users/me/sessions`.
    #[oai(
        path = "/admin/users/:id/sessions",
        method = "delete",
        operation_id = "end_user_sessions"
    )]
    async fn end_sessions(
        &self,
        #[oai(scope = "ApiScope::ADMIN")] auth: Caller,
        state: Data<&AppState>,
        /// The user's id.
        id: Path<i64>,
    ) -> Result<EndSessionsResponse, ApiError> {
        let user_id = UserId::new(id.0);
        match state.admin.end_sessions_of(auth.principal(), user_id).await {
            Ok(ended) => {
                tracing::info!(%user_id, ended, admin_id = %auth.principal().user.id, "user's sessions ended");
                Ok(EndSessionsResponse::Ended)
            }
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<EndSessionsResponse> for EndSessionsError {
    fn answer(self) -> Result<EndSessionsResponse, ApiError> {
        match self {
            Self::NotFound(_) => Ok(EndSessionsResponse::NotFound(detail_of(&self))),
            Self::OwnAccount => Err(ApiError::not_owner(&self)),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<UpdateUserResponse> for UpdateUserError {
    fn answer(self) -> Result<UpdateUserResponse, ApiError> {
        match self {
            Self::SelfLockout | Self::LastAdmin => {
                Ok(UpdateUserResponse::Conflict(detail_of(&self)))
            }
            Self::NotFound(_) => Ok(UpdateUserResponse::NotFound(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}
