//! Two-factor authentication (contract section 10): enrol an authenticator app, confirm it,
//! disable it, renew recovery codes; and an admin's reset. Logging in with a second factor is
//! the token endpoint's (`auth.rs`). Every password and code checked here is a guess that
//! spends the account's failed-login budgets, reserved before the check (contract section 5).

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::{
    accounts::{Password, UserId},
    mfa::{ChangeMfaError, ConfirmTotpError, ResetMfaError, StartTotpError, TotpEnrolment},
};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorAnswer, ErrorBody, detail_of};
use super::security::{ApiScope, Caller, OAuth2PasswordBearer};
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;
use crate::throttle::TooManyAttempts;

/// The password, again.
#[derive(Debug, Object)]
struct PasswordCheck {
    #[oai(write_only)]
    password: String,
}

/// A code of the authenticator app.
#[derive(Debug, Object)]
struct CodeCheck {
    /// The 6-digit code the app shows now.
    #[oai(write_only)]
    code: String,
}

/// The password and a second factor.
#[derive(Debug, Object)]
struct PasswordAndCode {
    #[oai(write_only)]
    password: String,
    /// A current 6-digit code, or one of your recovery codes (which this spends).
    #[oai(write_only)]
    code: String,
}

/// What an authenticator app needs. Show the QR code, or the secret for typing in.
#[derive(Debug, Object)]
struct TotpEnrolmentView {
    /// The shared secret, base32.
    secret: String,
    /// `otpauth://totp/Warden:<email>?secret=...&issuer=Warden`: what the QR code holds.
    otpauth_uri: String,
    /// An SVG image of the QR code, to show as it is.
    qr_svg: String,
}

impl From<TotpEnrolment> for TotpEnrolmentView {
    fn from(enrolment: TotpEnrolment) -> Self {
        Self {
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
            qr_svg: enrolment.qr_svg,
        }
    }
}

/// Single-use codes that stand in for the app (a lost phone). Shown only here: keep them safe.
#[derive(Debug, Object)]
struct RecoveryCodesView {
    recovery_codes: Vec<String>,
}

#[derive(Debug, ApiResponse)]
enum StartResponse {
    /// Pending until confirmed with a code: add it to the app, then confirm.
    #[oai(status = 201)]
    Created(Json<TotpEnrolmentView>),
    /// `Incorrect password`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `two-factor authentication is already enabled`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many wrong passwords or codes for this account or from this address (they count
    /// as failed logins); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for StartResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum ConfirmResponse {
    /// Enabled: from now on logins need a second factor. The recovery codes are shown only
    /// here.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodesView>),
    /// `invalid code`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Nothing is pending: start with `POST /users/me/mfa/totp`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many wrong passwords or codes for this account or from this address (they count
    /// as failed logins); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for ConfirmResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum DisableResponse {
    /// Disabled: logins need the password only; the recovery codes are gone.
    #[oai(status = 204)]
    Disabled,
    /// `Incorrect password` or `invalid code`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `two-factor authentication is not enabled`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many wrong passwords or codes for this account or from this address (they count
    /// as failed logins); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for DisableResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum RenewResponse {
    /// A new set; the old one no longer works.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodesView>),
    /// `Incorrect password` or `invalid code`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `two-factor authentication is not enabled`.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many wrong passwords or codes for this account or from this address (they count
    /// as failed logins); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for RenewResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum ResetResponse {
    /// The user's second factor and recovery codes are removed.
    #[oai(status = 204)]
    Reset,
    /// No user has this id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
}

/// Whether a refusal was a wrong password or code, which stays counted as a failed login.
fn wrong_guess(err: &ChangeMfaError) -> bool {
    matches!(
        err,
        ChangeMfaError::IncorrectPassword | ChangeMfaError::InvalidCode
    )
}

/// A password as given, checked for length only (the hasher refuses nothing shorter).
fn candidate(password: String) -> Result<Password, ApiError> {
    Password::candidate(password)
        .map_err(|_| ApiError::invalid("password: must be at most 1024 bytes"))
}

#[derive(Debug, Default)]
pub struct MfaApi;

#[OpenApi(tag = "ApiTags::Users")]
impl MfaApi {
    /// Start two-factor authentication
    ///
    /// Makes a TOTP secret for an authenticator app, pending until confirmed. Starting again
    /// replaces a pending secret.
    #[oai(
        path = "/users/me/mfa/totp",
        method = "post",
        operation_id = "start_totp"
    )]
    async fn start(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<PasswordCheck>,
    ) -> Result<StartResponse, ApiError> {
        let password = candidate(body.0.password)?;
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                origin.address(),
                |err| matches!(err, StartTotpError::IncorrectPassword),
                state.mfa.start_totp(&auth.0, &password),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(enrolment) => Ok(StartResponse::Created(Json(enrolment.into()))),
            Err(err) => err.answer(),
        }
    }

    /// Confirm two-factor authentication
    ///
    /// Send a code the app shows: from now on logins need a second factor. The answer holds
    /// ten single-use recovery codes, shown only here.
    #[oai(
        path = "/users/me/mfa/totp/confirm",
        method = "post",
        operation_id = "confirm_totp"
    )]
    async fn confirm(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<CodeCheck>,
    ) -> Result<ConfirmResponse, ApiError> {
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                origin.address(),
                |err| matches!(err, ConfirmTotpError::InvalidCode),
                state.mfa.confirm_totp(&auth.0, &body.0.code),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(recovery_codes) => Ok(ConfirmResponse::Ok(Json(RecoveryCodesView {
                recovery_codes,
            }))),
            Err(err) => err.answer(),
        }
    }

    /// Disable two-factor authentication
    ///
    /// Needs the password and a current code or a recovery code.
    #[oai(
        path = "/users/me/mfa/totp/disable",
        method = "post",
        operation_id = "disable_totp"
    )]
    async fn disable(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<PasswordAndCode>,
    ) -> Result<DisableResponse, ApiError> {
        let PasswordAndCode { password, code } = body.0;
        let password = candidate(password)?;
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                origin.address(),
                wrong_guess,
                state.mfa.disable_totp(&auth.0, &password, &code),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(()) => Ok(DisableResponse::Disabled),
            Err(err) => err.answer(),
        }
    }

    /// New recovery codes
    ///
    /// Needs the password and a current code or a recovery code. The old codes stop working.
    #[oai(
        path = "/users/me/mfa/recovery-codes",
        method = "post",
        operation_id = "renew_recovery_codes"
    )]
    async fn renew(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<PasswordAndCode>,
    ) -> Result<RenewResponse, ApiError> {
        let PasswordAndCode { password, code } = body.0;
        let password = candidate(password)?;
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                origin.address(),
                wrong_guess,
                state.mfa.renew_recovery_codes(&auth.0, &password, &code),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(recovery_codes) => Ok(RenewResponse::Ok(Json(RecoveryCodesView {
                recovery_codes,
            }))),
            Err(err) => err.answer(),
        }
    }

    /// Reset a user's two-factor authentication
    ///
    /// Removes the user's second factor and recovery codes (a lost phone): they log in with
    /// their password alone, and may enrol again. Not for your own account (403): disable your
    /// own with your password and a code (`POST /users/me/mfa/disable`).
    #[oai(
        path = "/admin/users/:id/mfa/reset",
        method = "post",
        operation_id = "reset_user_mfa",
        tag = "ApiTags::Admin"
    )]
    async fn reset(
        &self,
        #[oai(scope = "ApiScope::ADMIN")] auth: Caller,
        state: Data<&AppState>,
        /// The user's id.
        id: Path<i64>,
    ) -> Result<ResetResponse, ApiError> {
        match state.mfa.reset(auth.principal(), UserId::new(id.0)).await {
            Ok(()) => Ok(ResetResponse::Reset),
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<StartResponse> for StartTotpError {
    fn answer(self) -> Result<StartResponse, ApiError> {
        match self {
            Self::IncorrectPassword => Ok(StartResponse::BadRequest(detail_of(&self))),
            Self::AlreadyEnabled => Ok(StartResponse::Conflict(detail_of(&self))),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}

impl ErrorAnswer<ConfirmResponse> for ConfirmTotpError {
    fn answer(self) -> Result<ConfirmResponse, ApiError> {
        match self {
            Self::InvalidCode => Ok(ConfirmResponse::BadRequest(detail_of(&self))),
            Self::NothingPending => Ok(ConfirmResponse::Conflict(detail_of(&self))),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}

impl ErrorAnswer<DisableResponse> for ChangeMfaError {
    fn answer(self) -> Result<DisableResponse, ApiError> {
        match self {
            Self::IncorrectPassword | Self::InvalidCode => {
                Ok(DisableResponse::BadRequest(detail_of(&self)))
            }
            Self::NotEnabled => Ok(DisableResponse::Conflict(detail_of(&self))),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}

impl ErrorAnswer<RenewResponse> for ChangeMfaError {
    fn answer(self) -> Result<RenewResponse, ApiError> {
        match self {
            Self::IncorrectPassword | Self::InvalidCode => {
                Ok(RenewResponse::BadRequest(detail_of(&self)))
            }
            Self::NotEnabled => Ok(RenewResponse::Conflict(detail_of(&self))),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}

impl ErrorAnswer<ResetResponse> for ResetMfaError {
    fn answer(self) -> Result<ResetResponse, ApiError> {
        match self {
            Self::NotFound(_) => Ok(ResetResponse::NotFound(detail_of(&self))),
            Self::OwnAccount => Err(ApiError::not_owner(&self)),
            Self::Unknown(cause) => Err(cause.into()),
        }
    }
}
