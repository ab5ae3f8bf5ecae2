//! Personal access tokens (contract section 13): create, list and revoke your own. These are
//! operations on the account's security, so they need a password login's token.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::ExposeSecret;
use warden_domain::{
    accounts::Password,
    events::EventLimit,
    personal_tokens::{
        CreateTokenError, PersonalToken, PersonalTokenId, PersonalTokenLifetime, PersonalTokenName,
        PersonalTokenPage, RevokeTokenError, TokenRequest,
    },
};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorAnswer, ErrorBody, detail_of};
use super::security::{ApiScope, OAuth2PasswordBearer};
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;
use crate::throttle::TooManyAttempts;

/// A new personal access token.
#[derive(Debug, Object)]
struct TokenCreate {
    /// What it is for, 1 to 100 characters.
    name: String,
    /// Space-separated scopes, a non-empty subset of what the account may hold:
    /// `profile`, `posts:read`, `posts:write` (and `admin`, `tokens:introspect` for admins).
    scopes: String,
    /// Days until it expires, 1 to 365.
    expires_in_days: i64,
    /// The account's current password: a token outlives the login that made it, so making one
    /// needs more than an access token.
    #[oai(write_only)]
    current_password: String,
}

/// A personal access token, without its secret.
#[derive(Debug, Object)]
struct TokenView {
    id: i64,
    name: String,
    /// Its scopes, space-separated. It never carries more than the account may hold now.
    scopes: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// When it was last used, to within a minute; null if never.
    #[oai(nullable)]
    last_used_at: Option<DateTime<Utc>>,
}

impl From<PersonalToken> for TokenView {
    fn from(token: PersonalToken) -> Self {
        Self {
            id: token.id.get(),
            name: token.name.as_str().to_owned(),
            scopes: token.scopes.to_string(),
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// A token just made, with its secret: shown only here.
#[derive(Debug, Object)]
struct CreatedTokenView {
    #[oai(flatten)]
    view: TokenView,
    /// Send it as `Authorization: Bearer wdn_pat_...`. It is stored only as a hash: keep it.
    token: String,
}

#[derive(Debug, ApiResponse)]
enum CreateTokenResponse {
    /// The token, with its secret, shown only now.
    #[oai(status = 201)]
    Created(Json<CreatedTokenView>),
    /// The account holds `MAX_PERSONAL_TOKENS` live tokens (50 by default) already: revoke
    /// one first.
    #[oai(status = 409)]
    TooMany(Json<ErrorBody>),
    /// `current_password` is wrong (`Incorrect password`).
    #[oai(status = 400)]
    IncorrectPassword(Json<ErrorBody>),
    /// Too many wrong passwords for this account or from this address; retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for CreateTokenResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum ListTokensResponse {
    /// One page of the account's live tokens, newest first, without their secrets.
    #[oai(status = 200)]
    Ok(Json<Vec<TokenView>>),
}

#[derive(Debug, ApiResponse)]
enum RevokeTokenResponse {
    /// Revoked: it stops working at once.
    #[oai(status = 204)]
    Revoked,
    /// No live token of yours has this id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

fn default_token_limit() -> i64 {
    PersonalTokenPage::DEFAULT_LIMIT
}

#[derive(Debug, Default)]
pub struct TokensApi;

#[OpenApi(tag = "ApiTags::Users")]
impl TokensApi {
    /// Create a personal access token
    ///
    /// A long-lived token for scripts, or for Swagger UI when your account has a second
    /// factor (Authorize, `PersonalAccessToken`). It works for every operation its scopes
    /// allow except those on the account's security, which need a password login.
    #[oai(
        path = "/users/me/tokens",
        method = "post",
        operation_id = "create_personal_token"
    )]
    async fn create(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<TokenCreate>,
    ) -> Result<CreateTokenResponse, ApiError> {
        let TokenCreate {
            name,
            scopes,
            expires_in_days,
            current_password,
        } = body.0;
        let name = PersonalTokenName::new(name)
            .map_err(|err| ApiError::invalid(format!("name: {err}")))?;
        let lifetime = PersonalTokenLifetime::days(expires_in_days)
            .map_err(|err| ApiError::invalid(format!("expires_in_days: {err}")))?;
        // A password over the limit cannot be right; it never reaches the hasher.
        let Ok(current_password) = Password::candidate(current_password) else {
            return CreateTokenError::IncorrectPassword.answer();
        };
        let request = TokenRequest {
            name,
            scopes,
            lifetime,
            current_password,
        };
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                origin.address(),
                |err| matches!(err, CreateTokenError::IncorrectPassword),
                state.personal_tokens.create(&auth.0, request),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(created) => Ok(CreateTokenResponse::Created(Json(CreatedTokenView {
                token: created.secret.expose_secret().to_owned(),
                view: created.token.into(),
            }))),
            Err(err) => err.answer(),
        }
    }

    /// Your personal access tokens
    ///
    /// The live ones (neither revoked nor expired), newest first. Pages go newest first; the
    /// next page starts `before` the last id seen.
    #[oai(
        path = "/users/me/tokens",
        method = "get",
        operation_id = "list_personal_tokens"
    )]
    async fn list(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        /// How many tokens to return, 1 to 200.
        #[oai(
            default = "default_token_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
        /// Only tokens older than this one: the `id` of the last token of the previous page.
        before: Query<Option<i64>>,
    ) -> Result<ListTokensResponse, ApiError> {
        let limit =
            EventLimit::new(limit.0).map_err(|err| ApiError::invalid(format!("limit: {err}")))?;
        let page = PersonalTokenPage {
            before: before.0.map(PersonalTokenId::new),
            limit,
        };
        let tokens = state.personal_tokens.list(&auth.0, page).await?;
        Ok(ListTokensResponse::Ok(Json(
            tokens.into_iter().map(TokenView::from).collect(),
        )))
    }

    /// Revoke a personal access token
    #[oai(
        path = "/users/me/tokens/:id",
        method = "delete",
        operation_id = "revoke_personal_token"
    )]
    async fn revoke(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        /// The token's id.
        id: Path<i64>,
    ) -> Result<RevokeTokenResponse, ApiError> {
        match state
            .personal_tokens
            .revoke(&auth.0, PersonalTokenId::new(id.0))
            .await
        {
            Ok(()) => Ok(RevokeTokenResponse::Revoked),
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<CreateTokenResponse> for CreateTokenError {
    /// A scope outside what the account may hold is a 422, like any invalid field.
    fn answer(self) -> Result<CreateTokenResponse, ApiError> {
        match self {
            Self::InvalidScope(_) => Err(ApiError::invalid(self.to_string())),
            Self::IncorrectPassword => Ok(CreateTokenResponse::IncorrectPassword(detail_of(&self))),
            Self::TooMany(_) => Ok(CreateTokenResponse::TooMany(detail_of(&self))),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}

impl ErrorAnswer<RevokeTokenResponse> for RevokeTokenError {
    fn answer(self) -> Result<RevokeTokenResponse, ApiError> {
        match self {
            Self::NotFound => Ok(RevokeTokenResponse::NotFound(detail_of(&self))),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}
