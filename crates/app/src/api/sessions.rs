//! The caller's sessions, "your devices" (contract section 9): list them, end one, end all
//! others. An admin's `DELETE /admin/users/{id}/sessions` is in `admin.rs`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::{
    events::EventLimit,
    sessions::{EndSessionError, Session, SessionId, SessionPage},
};

use super::ApiTags;
use super::error::{ApiError, ErrorAnswer, ErrorBody, detail_of};
use super::security::{ApiScope, OAuth2PasswordBearer};
use crate::api::state::AppState;

/// One login of the account and everything refreshed from it.
#[derive(Debug, Object)]
pub struct SessionView {
    /// The session's id: the `sid` claim of its access tokens.
    id: String,
    created_at: DateTime<Utc>,
    /// When one of its tokens was last used, to within a minute (a refresh sets it exactly).
    last_used_at: DateTime<Utc>,
    /// When it ends, however it is refreshed.
    expires_at: DateTime<Utc>,
    /// The OAuth2 client of the login (`warden` when it named none).
    client_id: String,
    /// The login's `User-Agent`, cut to 256 characters.
    #[oai(nullable)]
    user_agent: Option<String>,
    /// The login's client address.
    #[oai(nullable)]
    ip_address: Option<String>,
    /// Whether this is the session of the token making this request.
    current: bool,
}

impl SessionView {
    fn of(session: Session, current: SessionId) -> Self {
        Self {
            id: session.id.to_string(),
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            client_id: session.origin.client_id.as_str().to_owned(),
            user_agent: session.origin.user_agent,
            ip_address: session.origin.ip_address.map(|ip| ip.to_string()),
            current: session.id == current,
        }
    }
}

#[derive(Debug, ApiResponse)]
enum ListSessionsResponse {
    /// One page of the account's active sessions, newest first.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionView>>),
}

#[derive(Debug, ApiResponse)]
enum EndSessionResponse {
    /// The session is ended: its access and refresh tokens no longer work.
    #[oai(status = 204)]
    Ended,
    /// No active session of yours has this id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum EndOtherSessionsResponse {
    /// Every other session of the account is ended.
    #[oai(status = 204)]
    Ended,
}

fn default_session_limit() -> i64 {
    SessionPage::DEFAULT_LIMIT
}

/// The page `limit` and `before` name, or `None` when `before` is not even a UUID, so names
/// none of the caller's sessions (an empty page, as for any other such id). The document's
/// validators bound `limit` already; the domain's type says so once more.
fn page(limit: i64, before: Option<&str>) -> Result<Option<SessionPage>, ApiError> {
    let limit = EventLimit::new(limit).map_err(|err| ApiError::invalid(format!("limit: {err}")))?;
    Ok(match before {
        None => Some(SessionPage {
            before: None,
            limit,
        }),
        Some(id) => SessionId::parse(id).map(|id| SessionPage {
            before: Some(id),
            limit,
        }),
    })
}

#[derive(Debug, Default)]
pub struct SessionsApi;

#[OpenApi(tag = "ApiTags::Users")]
impl SessionsApi {
    /// Your sessions (devices)
    ///
    /// Every login that is still active, newest first, with where it came from; `current`
    /// marks the one making this request. An account holds at most `MAX_SESSIONS_PER_ACCOUNT`
    /// (100 by default): a login past it ends the least recently used. Pages go newest first;
    /// the next page starts `before` the last id seen.
    #[oai(
        path = "/users/me/sessions",
        method = "get",
        operation_id = "list_my_sessions"
    )]
    async fn list(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        /// How many sessions to return, 1 to 200.
        #[oai(
            default = "default_session_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
        /// Only sessions listed after this one: the `id` of the last session of the previous
        /// page. An id that is none of your sessions gives an empty page.
        before: Query<Option<String>>,
    ) -> Result<ListSessionsResponse, ApiError> {
        let principal = &auth.0;
        let Some(page) = page(limit.0, before.0.as_deref())? else {
            return Ok(ListSessionsResponse::Ok(Json(Vec::new())));
        };
        let sessions = state.auth.sessions(principal, page).await?;
        Ok(ListSessionsResponse::Ok(Json(
            sessions
                .into_iter()
                .map(|session| SessionView::of(session, principal.session_id()))
                .collect(),
        )))
    }

    /// End every other session
    ///
    /// Logs out every device but this one: their access and refresh tokens stop working at
    /// once.
    #[oai(
        path = "/users/me/sessions",
        method = "delete",
        operation_id = "end_my_other_sessions"
    )]
    async fn end_others(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
    ) -> Result<EndOtherSessionsResponse, ApiError> {
        let ended = state.auth.end_other_sessions(&auth.0).await?;
        tracing::info!(user_id = %auth.0.user.id, ended, "other sessions ended");
        Ok(EndOtherSessionsResponse::Ended)
    }

    /// End a session
    ///
    /// Logs out one device (this one too, if it is its id): its access and refresh tokens stop
    /// working at once.
    #[oai(
        path = "/users/me/sessions/:id",
        method = "delete",
        operation_id = "end_my_session"
    )]
    async fn end(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        /// The session's id, as listed.
        id: Path<String>,
    ) -> Result<EndSessionResponse, ApiError> {
        // An id that is not even a UUID names no session either.
        let Some(id) = SessionId::parse(&id.0) else {
            return EndSessionError::NotFound.answer();
        };
        match state.auth.end_session(&auth.0, id).await {
            Ok(()) => {
                tracing::info!(user_id = %auth.0.user.id, session_id = %id, "session ended");
                Ok(EndSessionResponse::Ended)
            }
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<EndSessionResponse> for EndSessionError {
    fn answer(self) -> Result<EndSessionResponse, ApiError> {
        match self {
            Self::NotFound => Ok(EndSessionResponse::NotFound(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}
