//! The token endpoint, `POST /login` (RFC 6749 sections 4.3 and 5).
//!
//! The form is parsed here rather than by poem's `Form<T>`, because OAuth2 wants answers that
//! `Form<T>` cannot give: a repeated field, a value that is not UTF-8 and a wrong content type
//! are all `invalid_request` (400, RFC 6749 body), an empty value counts as absent (section 3.1),
//! and unknown fields are ignored (`auth/form.rs`).

use poem::http::header;
use poem::middleware::SetHeader;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::ExposeSecret;
use warden_domain::sessions::{ClientId, LoginError, RefreshError, TokenGrant};

use super::ApiTags;
use super::error::{ApiError, Fault, RETRY_AFTER_SECONDS};
use super::security::OAuth2PasswordBearer;
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;

pub mod form;
pub(crate) mod grants;

pub use form::TokenRequest;
use grants::{MFA_OTP_GRANT, mfa_otp_grant, password_grant, refresh_grant};

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Object)]
#[oai(example)]
pub struct TokenResponse {
    /// A signed JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange it at this endpoint (`grant_type=refresh_token`) for new tokens. Single use.
    pub refresh_token: String,
    /// The scopes granted, space-separated.
    pub scope: String,
}

impl From<TokenGrant> for TokenResponse {
    fn from(grant: TokenGrant) -> Self {
        Self {
            access_token: grant.access_token,
            token_type: "bearer".into(),
            expires_in: grant.expires_in.as_secs(),
            refresh_token: grant.refresh_token,
            scope: grant.scopes.to_string(),
        }
    }
}

impl Example for TokenResponse {
    fn example() -> Self {
        Self {
            access_token: "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJIUzI1NiJ9.eyJ...".into(),
            token_type: "bearer".into(),
            expires_in: 900,
            refresh_token: "kq3Xb0m3xJ8W1tKQk1qS2YQy7mJbYb9o1o8oJr3b0wE".into(),
            scope: "profile posts:read posts:write".into(),
        }
    }
}

/// An error of the token endpoint (RFC 6749 section 5.2).
#[derive(Debug, Object)]
#[oai(example)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`,
    /// `mfa_required`, `slow_down`, `server_error` or `temporarily_unavailable`.
    pub error: String,
    /// What went wrong, for a person to read.
    pub error_description: String,
    /// With `mfa_required` only: send it back with a code in the grant
    /// `urn:warden:params:oauth:grant-type:mfa-otp`. Single use, valid 5 minutes.
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
}

impl OAuthErrorBody {
    /// The body of an error answer.
    pub fn json(error: &str, description: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: error.into(),
            error_description: description.into(),
            mfa_token: None,
        })
    }

    /// `invalid_request` for a required field that is absent (or empty).
    pub fn missing(field: &str) -> Json<Self> {
        Self::json(
            "invalid_request",
            format!("the {field} parameter is missing"),
        )
    }

    /// The body of a failure no request caused: `temporarily_unavailable` (503) or
    /// `server_error` (500); the cause is in the log.
    pub fn of_fault(fault: Fault) -> Json<Self> {
        match fault {
            Fault::Unavailable => Self::json(
                "temporarily_unavailable",
                "the service is temporarily unavailable; try again shortly",
            ),
            Fault::Bug => Self::json("server_error", "Internal Server Error"),
        }
    }
}

impl Example for OAuthErrorBody {
    fn example() -> Self {
        Self {
            error: "invalid_grant".into(),
            error_description: LoginError::InvalidCredentials.to_string(),
            mfa_token: None,
        }
    }
}

#[derive(Debug, ApiResponse)]
pub enum LoginResponse {
    /// Logged in: an access token and the scopes granted.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
    /// The request is malformed (`invalid_request`); the credentials are wrong, the account is
    /// disabled, or the refresh token is unknown, expired, spent or revoked (`invalid_grant`);
    /// the grant type is not supported (`unsupported_grant_type`); or a scope is unknown or
    /// more than the login granted (`invalid_scope`). For an account with a second factor, the
    /// right password without `otp` answers `mfa_required` with an `mfa_token`; a wrong code,
    /// or an unknown, expired or spent `mfa_token`, is `invalid_grant`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// An unexpected failure (`server_error`); the details are in the server's log.
    #[oai(status = 500)]
    ServerError(Json<OAuthErrorBody>),
    /// Too many failed logins for this username (at the `mfa-otp` step, for the account the
    /// `mfa_token` belongs to) or from this address (`slow_down`); retry after `Retry-After`
    /// seconds. The same for existing and unknown usernames.
    #[oai(status = 429)]
    TooManyRequests(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] u64),
    /// The database cannot be reached right now, or too many logins wait for a password check
    /// (`temporarily_unavailable`); retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] u32),
}

impl LoginResponse {
    fn error(error: &str, description: impl Into<String>) -> Self {
        Self::BadRequest(OAuthErrorBody::json(error, description))
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::error("invalid_request", description)
    }
}

impl From<anyhow::Error> for LoginResponse {
    /// `server_error`, or `temporarily_unavailable` if the database is unreachable; the cause
    /// goes to the log.
    fn from(cause: anyhow::Error) -> Self {
        let fault = Fault::of(&cause);
        let body = OAuthErrorBody::of_fault(fault);
        match fault {
            Fault::Unavailable => Self::Unavailable(body, RETRY_AFTER_SECONDS),
            Fault::Bug => Self::ServerError(body),
        }
    }
}

impl From<LoginError> for LoginResponse {
    /// Unknown email, wrong password and disabled account are one error with one message, so
    /// that the answer does not tell which.
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::InvalidCredentials
            | LoginError::InvalidSecondFactor { .. }
            | LoginError::InvalidMfaToken
            | LoginError::EmailNotVerified => Self::error("invalid_grant", err.to_string()),
            LoginError::MfaRequired { ref mfa_token } => {
                let mut body = OAuthErrorBody::json("mfa_required", err.to_string());
                body.0.mfa_token = Some(mfa_token.expose_secret().to_owned());
                Self::BadRequest(body)
            }
            LoginError::InvalidScope(_) => Self::error("invalid_scope", err.to_string()),
            LoginError::Unknown(cause) => cause.into(),
        }
    }
}

impl From<RefreshError> for LoginResponse {
    /// Every refresh token that does not work gets one message, whatever the reason.
    fn from(err: RefreshError) -> Self {
        match err {
            RefreshError::InvalidGrant | RefreshError::Replayed(_) => {
                Self::error("invalid_grant", err.to_string())
            }
            RefreshError::InvalidScope(_) => Self::error("invalid_scope", err.to_string()),
            RefreshError::Unknown(cause) => cause.into(),
        }
    }
}

#[derive(Debug, ApiResponse)]
enum LogoutResponse {
    /// The session is ended: its access and refresh tokens no longer work.
    #[oai(status = 204)]
    LoggedOut,
}

/// Every answer of the token endpoint, errors included, must not be cached
/// (RFC 6749 section 5.1).
pub(crate) fn no_store(endpoint: impl Endpoint) -> impl Endpoint {
    // Errors become responses first: `SetHeader` only touches successful ones. A missing or
    // non-Bearer `Authorization` at `/introspect` fails in poem-openapi's extractor, before our
    // checker: it gets the 401 of every protected operation, not poem's plain text.
    endpoint
        .catch_all_error(|err| async move {
            if err.is::<poem_openapi::error::AuthorizationError>() {
                ApiError::not_authenticated().into_response()
            } else {
                err.into_response()
            }
        })
        .with(
            SetHeader::new()
                .overriding(header::CACHE_CONTROL, "no-store")
                .overriding(header::PRAGMA, "no-cache"),
        )
}

#[derive(Debug, Default)]
pub struct AuthApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Log in or refresh (OAuth2 token endpoint)
    ///
    /// The OAuth2 password grant: send the account's email as `username` and its password as a
    /// form. Swagger UI's **Authorize** button calls this. Or the refresh grant: send
    /// `grant_type=refresh_token` and the last `refresh_token` for new tokens; each refresh
    /// token works once, and presenting a spent one ends the session.
    ///
    /// An account with a second factor: the right password alone answers 400 `mfa_required`
    /// with an `mfa_token`; send it with a code as
    /// `grant_type=urn:warden:params:oauth:grant-type:mfa-otp&mfa_token=...&otp=123456`, or send
    /// `otp` with the password to log in in one step. A recovery code works in place of a code.
    ///
    /// `client_id` is recorded in the session and its tokens; `client_secret` and an
    /// `Authorization: Basic` header are accepted and ignored. Every answer carries `Cache-Control: no-store` and `Pragma: no-cache`. Unknown
    /// email, wrong password and disabled account get the same answer.
    #[oai(
        path = "/login",
        method = "post",
        operation_id = "login",
        transform = "no_store"
    )]
    async fn login(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        form: TokenRequest,
    ) -> LoginResponse {
        let client_id = match form.optional("client_id").map(ClientId::new).transpose() {
            Ok(client_id) => client_id.unwrap_or_default(),
            Err(err) => return LoginResponse::invalid_request(err.to_string()),
        };
        let (grant, response) = match form.optional("grant_type").unwrap_or("password") {
            "password" => (
                "password",
                password_grant(&state, &origin, &form, client_id).await,
            ),
            "refresh_token" => ("refresh_token", refresh_grant(&state, &origin, &form).await),
            MFA_OTP_GRANT => ("mfa_otp", mfa_otp_grant(&state, &origin, &form).await),
            other => (
                "other",
                LoginResponse::error(
                    "unsupported_grant_type",
                    format!("the {other} grant type is not supported"),
                ),
            ),
        };
        let outcome = match &response {
            LoginResponse::Ok(_) => "success".to_owned(),
            LoginResponse::BadRequest(Json(body)) => body.error.clone(),
            LoginResponse::TooManyRequests(..) => "throttled".to_owned(),
            LoginResponse::Unavailable(..) => "unavailable".to_owned(),
            LoginResponse::ServerError(_) => "error".to_owned(),
        };
        metrics::counter!("warden_logins_total", "grant" => grant, "outcome" => outcome)
            .increment(1);
        response
    }

    /// Log in or refresh (the FastAPI tutorial's token URL)
    ///
    /// The token endpoint under the name the FastAPI tutorial gives it
    /// (`OAuth2PasswordBearer(tokenUrl="token")`), so that clients written against it work
    /// unchanged: the same operation as `POST /login` in every respect (grants, answers, errors,
    /// throttling). The security scheme's token URL stays `/login`.
    #[oai(
        path = "/token",
        method = "post",
        operation_id = "token",
        transform = "no_store"
    )]
    async fn token(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        form: TokenRequest,
    ) -> LoginResponse {
        self.login(origin, state, form).await
    }

    /// Log out
    ///
    /// Ends the session the token belongs to: its access token and its refresh token stop
    /// working at once. Other sessions of the account are untouched.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
    ) -> Result<LogoutResponse, ApiError> {
        state.auth.logout(&auth.0).await?;
        tracing::info!(session_id = %auth.0.session_id(), "logged out");
        Ok(LogoutResponse::LoggedOut)
    }
}

#[cfg(test)]
mod tests;
