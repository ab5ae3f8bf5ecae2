//! Accounts: registration and other users' public profiles (contract section 5). Your own
//! account is `account.rs`'s.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::accounts::{EmailAddress, GetUserError, Password, RegisterError, User, UserId};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorAnswer, ErrorBody, ServerError, detail, detail_of};
use super::security::{ApiScope, Caller};
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;
use crate::throttle::retry_after_seconds;

/// A new account.
#[derive(Debug, Object)]
#[oai(example)]
struct UserCreate {
    /// The account's email; surrounding white space is trimmed and case does not matter.
    email: String,
    /// 8 to 1024 bytes.
    #[oai(write_only)]
    password: String,
}

impl Example for UserCreate {
    fn example() -> Self {
        Self {
            email: "ann@example.com".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

/// A user as everyone may see them.
#[derive(Debug, Object)]
#[oai(example)]
pub(crate) struct UserOut {
    id: i64,
    email: String,
    created_at: DateTime<Utc>,
}

impl Example for UserOut {
    fn example() -> Self {
        Self {
            id: 1,
            email: "ann@example.com".into(),
            created_at: DateTime::UNIX_EPOCH,
        }
    }
}

impl From<User> for UserOut {
    fn from(user: User) -> Self {
        Self {
            id: user.id.get(),
            email: user.email.to_string(),
            created_at: user.created_at,
        }
    }
}

/// An account with its status.
#[derive(Debug, Object)]
pub(crate) struct UserMe {
    id: i64,
    email: String,
    created_at: DateTime<Utc>,
    /// A disabled account cannot log in.
    is_active: bool,
    /// Admins may be granted the `admin` scope.
    is_admin: bool,
}

impl From<User> for UserMe {
    fn from(user: User) -> Self {
        Self {
            id: user.id.get(),
            email: user.email.to_string(),
            created_at: user.created_at,
            is_active: user.is_active,
            is_admin: user.is_admin,
        }
    }
}

#[derive(Debug, ApiResponse)]
enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserOut>),
    /// Another account has this email.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The email is not valid, or the password is not 8 to 1024 bytes long.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// Too many registrations from this address; retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(Debug, ApiResponse)]
enum GetUserResponse {
    /// The user.
    #[oai(status = 200)]
    Ok(Json<UserOut>),
    /// No user has this id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, Default)]
pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// Register
    ///
    /// Creates an active account. Log in with it at `/login`. With email on, a verification
    /// mail goes to the address.
    #[oai(path = "/users", method = "post", operation_id = "create_user")]
    async fn create(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        body: JsonBody<UserCreate>,
    ) -> Result<RegisterResponse, ServerError> {
        let address = origin.address();
        if let Some(wait) = state.throttle.registration(address).await? {
            tracing::warn!(?address, "registration throttled");
            metrics::counter!("warden_throttled_total", "kind" => "registration").increment(1);
            return Ok(RegisterResponse::TooManyRequests(
                detail("too many registrations from this address; try again later"),
                retry_after_seconds(wait),
            ));
        }
        let JsonBody(UserCreate { email, password }) = body;
        let email = match EmailAddress::new(&email) {
            Ok(email) => email,
            Err(err) => {
                return Ok(RegisterResponse::Invalid(detail(format!(
                    "email: {}",
                    err.reason
                ))));
            }
        };
        let password = match Password::new(password) {
            Ok(password) => password,
            Err(err) => {
                return Ok(RegisterResponse::Invalid(detail(format!(
                    "password: {err}"
                ))));
            }
        };
        match state.account_flows.register(email, password).await {
            Ok(user) => {
                tracing::info!(user_id = %user.id, "user registered");
                Ok(RegisterResponse::Created(Json(user.into())))
            }
            Err(err) => err.answer(),
        }
    }

    /// A user's public profile
    #[oai(path = "/users/:id", method = "get", operation_id = "get_user")]
    async fn get(
        &self,
        #[oai(scope = "ApiScope::POSTS_READ")] _auth: Caller,
        state: Data<&AppState>,
        /// The user's id.
        id: Path<i64>,
    ) -> Result<GetUserResponse, ApiError> {
        match state.users.get(UserId::new(id.0)).await {
            Ok(user) => Ok(GetUserResponse::Ok(Json(user.into()))),
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<RegisterResponse, ServerError> for RegisterError {
    fn answer(self) -> Result<RegisterResponse, ServerError> {
        match self {
            Self::Duplicate { .. } => Ok(RegisterResponse::Conflict(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<GetUserResponse> for GetUserError {
    fn answer(self) -> Result<GetUserResponse, ApiError> {
        match self {
            Self::NotFound(_) => Ok(GetUserResponse::NotFound(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}
