//! The error answers of every operation but the token endpoint (which answers RFC 6749 errors,
//! see [`super::auth`]): `{"detail": "..."}`, FastAPI's shape, so existing clients keep working.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::error::{
    AuthorizationError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object};
use warden_domain::{
    error::{Unknown, is_unavailable},
    scope::Scope,
};

use super::routes::RouteTable;

/// An error answer.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    /// What went wrong, for a person to read. Validation errors name the offending field.
    pub detail: String,
}

impl Example for ErrorBody {
    fn example() -> Self {
        Self::new("Could not validate credentials")
    }
}

impl ErrorBody {
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

/// A JSON error body with `detail`.
pub fn detail(detail: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody::new(detail))
}

/// A JSON error body whose `detail` is the error's own message.
pub fn detail_of(err: &impl std::fmt::Display) -> Json<ErrorBody> {
    detail(err.to_string())
}

/// The generic body of every 500: the cause goes to the log, never to the client.
const INTERNAL: &str = "Internal Server Error";
/// The body of a 503 while the database cannot be reached.
pub const UNAVAILABLE: &str = "Service temporarily unavailable, try again shortly";
/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// What an unexpected failure is, for its answer: the database is out of reach for now (503,
/// retry shortly), or it is a bug (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Unavailable,
    Bug,
}

impl Fault {
    /// The one place that decides "transient or bug": a failure whose cause chain holds the
    /// domain's [`Unavailable`](warden_domain::error::Unavailable) marker is transient. Logs the
    /// cause, which never reaches the client.
    pub fn of(cause: &anyhow::Error) -> Self {
        if is_unavailable(cause) {
            tracing::warn!(error = format!("{cause:#}"), "temporarily unavailable");
            Self::Unavailable
        } else {
            tracing::error!(error = format!("{cause:#}"), "request failed");
            Self::Bug
        }
    }
}

/// How one operation answers a domain error: with one of the operation's own documented
/// outcomes (`Ok`, a 404 say), or with a common error (`Err`: a 403, a 500, a 503). There is one
/// implementation per domain error and operation, so each error is mapped to HTTP in exactly one
/// place, and the message is the domain error's own text.
pub trait ErrorAnswer<R, E = ApiError> {
    fn answer(self) -> Result<R, E>;
}

/// What any protected operation may answer besides its own outcomes.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// No bearer token (`Not authenticated`), or a token that is malformed, badly signed,
    /// expired, of an ended session or of a disabled or deleted user
    /// (`Could not validate credentials`).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The token lacks the scope the operation needs (`Not enough permissions`;
    /// `WWW-Authenticate` names the scope), or the resource is somebody else's
    /// (`Not authorized to perform requested action`).
    #[oai(status = 403)]
    Forbidden(
        Json<ErrorBody>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    /// The body is larger than 64 KiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// A path, query or body value is invalid; `detail` names it.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// An unexpected failure; the details are in the server's log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database cannot be reached, or the server is overloaded (too many password checks
    /// waiting); retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

impl ApiError {
    /// RFC 6750 section 3: a request without credentials gets a challenge with no error code.
    pub fn not_authenticated() -> Self {
        Self::Unauthorized(detail("Not authenticated"), "Bearer".into())
    }

    pub fn invalid_token() -> Self {
        Self::Unauthorized(
            detail("Could not validate credentials"),
            r#"Bearer error="invalid_token""#.into(),
        )
    }

    pub fn insufficient_scope(needed: Scope) -> Self {
        Self::Forbidden(
            detail("Not enough permissions"),
            Some(format!(
                r#"Bearer error="insufficient_scope", scope="{needed}""#
            )),
        )
    }

    /// The caller may see the resource but it is not theirs to change: `why` says so. No
    /// `WWW-Authenticate`: the token is fine.
    pub fn not_owner(why: &impl std::fmt::Display) -> Self {
        Self::Forbidden(detail_of(why), None)
    }

    /// A personal access token at an operation on the account's security (contract section
    /// 13). No `WWW-Authenticate`: the token is fine, just not for this.
    pub fn needs_password_login() -> Self {
        Self::Forbidden(detail("this operation needs a password login"), None)
    }

    /// A value that passed the document's schema but not the domain's rules.
    pub fn invalid(detail_text: impl Into<String>) -> Self {
        Self::Invalid(detail(detail_text))
    }
}

impl From<anyhow::Error> for ApiError {
    /// A bare 500, or a 503 if the database is unreachable; the cause goes to the log.
    fn from(cause: anyhow::Error) -> Self {
        match Fault::of(&cause) {
            Fault::Unavailable => Self::Unavailable(detail(UNAVAILABLE), RETRY_AFTER_SECONDS),
            Fault::Bug => Self::Internal(detail(INTERNAL)),
        }
    }
}

impl From<Unknown> for ApiError {
    /// The failure of an operation with no outcome of its own: a 500, or a 503 if the database is
    /// unreachable, so `?` answers it.
    fn from(Unknown(cause): Unknown) -> Self {
        cause.into()
    }
}

/// What an unprotected operation may answer besides its own outcomes.
#[derive(Debug, ApiResponse)]
pub enum ServerError {
    /// The body is larger than 64 KiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// An unexpected failure; the details are in the server's log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database cannot be reached, or the server is overloaded (too many password checks
    /// waiting); retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

impl From<anyhow::Error> for ServerError {
    /// A bare 500, or a 503 if the database is unreachable; the cause goes to the log.
    fn from(cause: anyhow::Error) -> Self {
        match Fault::of(&cause) {
            Fault::Unavailable => Self::Unavailable(detail(UNAVAILABLE), RETRY_AFTER_SECONDS),
            Fault::Bug => Self::Internal(detail(INTERNAL)),
        }
    }
}

/// The OAuth2 form endpoints: the token endpoint under both its names, revocation and
/// introspection, whose errors have RFC 6749's shape.
const TOKEN_ENDPOINTS: [&str; 4] = ["/login", "/token", "/revoke", "/introspect"];

/// Turns every error that poem or poem-openapi would answer in plain text into the contract's
/// JSON: `{"detail"}`, or RFC 6749's `{"error", "error_description"}` (with `no-store`) at the
/// token endpoint. Errors that already carry our own response pass through unchanged. A 405
/// gets `Allow` from `routes`.
pub fn render_error(err: poem::Error, path: &str, routes: &RouteTable) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    // poem-openapi's bearer extractor fails this way when there is no (Bearer) Authorization
    // header; the checker, which would answer with our 401, never runs.
    if err.is::<AuthorizationError>() {
        return ApiError::not_authenticated().into_response();
    }
    // A body, query or path value of the wrong shape is a validation error: 422, as FastAPI
    // answers, with poem-openapi's message, which names the field.
    let status = if err.is::<ParseRequestPayloadError>()
        || err.is::<ParseParamError>()
        || err.is::<ParsePathError>()
    {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        err.status()
    };
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
        INTERNAL.to_owned()
    } else if status == StatusCode::NOT_FOUND {
        "Not Found".to_owned()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        "Method Not Allowed".to_owned()
    } else {
        err.to_string()
    };
    let path = path.trim_end_matches('/');
    let mut response = if TOKEN_ENDPOINTS.contains(&path) {
        let error = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request"
        };
        let body = serde_json::json!({ "error": error, "error_description": message });
        poem::web::Json(body)
            .with_status(status)
            .with_header(header::CACHE_CONTROL, "no-store")
            .with_header(header::PRAGMA, "no-cache")
            .into_response()
    } else {
        detail(message).with_status(status).into_response()
    };
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = routes.allow(path)
        && let Ok(value) = HeaderValue::from_str(methods)
    {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}
