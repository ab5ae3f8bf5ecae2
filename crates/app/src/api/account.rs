//! Your own account (contract section 5): reading it, and the changes only its owner makes,
//! each with the current password (an email change, a new password, deleting it).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::accounts::{
    ChangeEmailError, ChangePasswordError, DeleteAccountError, EmailAddress, Password, User,
};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorAnswer, ErrorBody, detail, detail_of};
use super::mail::{Notice, notice, throttled};
use super::security::{ApiScope, Caller, OAuth2PasswordBearer};
use super::users::UserMe;
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;
use crate::throttle::TooManyAttempts;

/// A change of email.
#[derive(Debug, Object)]
struct UserUpdate {
    /// The new email; surrounding white space is trimmed and case does not matter.
    email: String,
    /// The password now: whoever holds only an access token cannot move the account to
    /// another mailbox.
    #[oai(write_only)]
    current_password: String,
}

/// The deletion of your account.
#[derive(Debug, Object)]
struct AccountDeletion {
    /// The password now.
    #[oai(write_only)]
    current_password: String,
}

/// A change of password.
#[derive(Debug, Object)]
struct PasswordChange {
    /// The password now.
    #[oai(write_only)]
    current_password: String,
    /// 8 to 1024 bytes.
    #[oai(write_only)]
    new_password: String,
}

/// Your own account, with whether its address is verified and whether its logins need a second
/// factor.
#[derive(Debug, Object)]
pub(crate) struct MyAccount {
    #[oai(flatten)]
    user: UserMe,
    /// Whether the address was shown to receive mail (`POST /email-verification/confirm`, a
    /// password reset, or a confirmed change of address). A change made without mail clears it.
    email_verified: bool,
    /// Whether logins need a second factor (TOTP), since `POST /users/me/mfa/totp/confirm`.
    mfa_enabled: bool,
}

impl MyAccount {
    async fn of(state: &AppState, user: User) -> Result<Self, ApiError> {
        let mfa_enabled = state.mfa.is_enabled(user.id).await?;
        Ok(Self {
            email_verified: user.email_verified,
            user: user.into(),
            mfa_enabled,
        })
    }
}

#[derive(Debug, ApiResponse)]
enum MeResponse {
    /// Your account.
    #[oai(status = 200)]
    Ok(Json<MyAccount>),
}

#[derive(Debug, ApiResponse)]
enum UpdateMeResponse {
    /// Your account as it is now (email off: the change is made at once, and the new address
    /// is unverified).
    #[oai(status = 200)]
    Ok(Json<MyAccount>),
    /// Email on: nothing changed yet. A confirmation mail is on its way to the new address and
    /// a notice to the old one; the change happens at `POST /email-change/confirm`.
    #[oai(status = 202)]
    Accepted(Json<Notice>),
    /// `current_password` is wrong (`Incorrect password`).
    #[oai(status = 400)]
    IncorrectPassword(Json<ErrorBody>),
    /// Another account has this email.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many wrong passwords for this account or from this address, or (email on) too many
    /// email changes asked for from this address or to this email; retry after `Retry-After`
    /// seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for UpdateMeResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum ChangePasswordResponse {
    /// The password is changed and every other session of the account has ended.
    #[oai(status = 204)]
    Changed,
    /// `current_password` is wrong (`Incorrect password`).
    #[oai(status = 400)]
    IncorrectPassword(Json<ErrorBody>),
    /// Too many wrong passwords or codes for this account or from this address (they count
    /// as failed logins); retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for ChangePasswordResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, ApiResponse)]
enum DeleteMeResponse {
    /// The account is gone, with its posts, votes and sessions.
    #[oai(status = 204)]
    Deleted,
    /// The account is the only active admin (`at least one active admin must remain`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `current_password` is wrong (`Incorrect password`).
    #[oai(status = 400)]
    IncorrectPassword(Json<ErrorBody>),
    /// Too many wrong passwords for this account or from this address; retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl TooManyAttempts for DeleteMeResponse {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self {
        Self::TooManyRequests(body, retry_after)
    }
}

#[derive(Debug, Default)]
pub struct AccountApi;

#[OpenApi(tag = "ApiTags::Users")]
impl AccountApi {
    /// Your account
    ///
    /// The account the token belongs to (FastAPI's `get_current_user`).
    #[oai(path = "/users/me", method = "get", operation_id = "get_me")]
    async fn me(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: Caller,
        state: Data<&AppState>,
    ) -> Result<MeResponse, ApiError> {
        Ok(MeResponse::Ok(Json(
            MyAccount::of(&state, auth.principal().user.clone()).await?,
        )))
    }

    /// Change your email
    ///
    /// Needs the current password. With email on, the change waits for the token mailed to the
    /// new address (`POST /email-change/confirm`), and requests are throttled like password
    /// reset requests; without, it is made at once. Either way, tokens mailed to the old
    /// address stop working when the change is made.
    #[oai(path = "/users/me", method = "patch", operation_id = "update_me")]
    async fn update_me(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<UserUpdate>,
    ) -> Result<UpdateMeResponse, ApiError> {
        let UserUpdate {
            email,
            current_password,
        } = body.0;
        let email = EmailAddress::new(&email)
            .map_err(|err| ApiError::invalid(format!("email: {}", err.reason)))?;
        // A password over the limit cannot be right; it never reaches the hasher.
        let Ok(current) = Password::candidate(current_password) else {
            return ChangeEmailError::IncorrectPassword.answer();
        };
        let address = origin.address();
        if state.account_flows.sends_mail()
            && let Some(wait) = throttled(&state, &origin, &email.normalized()).await?
        {
            return Ok(UpdateMeResponse::TooManyRequests(
                detail("too many requests; try again later"),
                wait,
            ));
        }
        // With email on, nothing changes until the new address confirms (`None`); without,
        // the change is made at once.
        let change = state.account_flows.change_email(&auth.0, &current, &email);
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                address,
                |err| matches!(err, ChangeEmailError::IncorrectPassword),
                change,
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(None) => Ok(UpdateMeResponse::Accepted(notice(
                "a confirmation message is on its way to the new address",
            ))),
            Ok(Some(user)) => Ok(UpdateMeResponse::Ok(Json(
                MyAccount::of(&state, user).await?,
            ))),
            Err(err) => err.answer(),
        }
    }

    /// Change your password
    ///
    /// Every other session of the account ends: whoever else is logged in is logged out. The
    /// session of this call stays.
    #[oai(
        path = "/users/me/password",
        method = "put",
        operation_id = "change_password"
    )]
    async fn change_password(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<PasswordChange>,
    ) -> Result<ChangePasswordResponse, ApiError> {
        let principal = &auth.0;
        let PasswordChange {
            current_password,
            new_password,
        } = body.0;
        let new = Password::new(new_password)
            .map_err(|err| ApiError::invalid(format!("new_password: {err}")))?;
        // A current password over the limit cannot be right; it never reaches the hasher.
        let Ok(current) = Password::candidate(current_password) else {
            return ChangePasswordError::IncorrectPassword.answer();
        };
        // A wrong password here is a failed login of the account (contract section 5).
        let address = origin.address();
        let outcome = match state
            .throttle
            .guard_account_check(
                &principal.user,
                address,
                |err| matches!(err, ChangePasswordError::IncorrectPassword),
                state.users.change_password(principal, &current, &new),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(user_id = %principal.user.id, "password changed");
                Ok(ChangePasswordResponse::Changed)
            }
            Err(err) => err.answer(),
        }
    }

    /// Delete your account
    ///
    /// Needs the current password. The account goes with its posts, votes and sessions. This
    /// cannot be undone.
    #[oai(path = "/users/me", method = "delete", operation_id = "delete_me")]
    async fn delete_me(
        &self,
        origin: ClientOrigin,
        #[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer,
        state: Data<&AppState>,
        body: JsonBody<AccountDeletion>,
    ) -> Result<DeleteMeResponse, ApiError> {
        let id = auth.0.user.id;
        // A password over the limit cannot be right; it never reaches the hasher.
        let Ok(current) = Password::candidate(body.0.current_password) else {
            return DeleteAccountError::IncorrectPassword.answer();
        };
        let outcome = match state
            .throttle
            .guard_account_check(
                &auth.0.user,
                origin.address(),
                |err| matches!(err, DeleteAccountError::IncorrectPassword),
                state.users.delete(&auth.0, &current),
            )
            .await?
        {
            Ok(outcome) => outcome,
            Err(throttled) => return Ok(throttled.answer()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(user_id = %id, "account deleted");
                Ok(DeleteMeResponse::Deleted)
            }
            Err(err) => err.answer(),
        }
    }
}

impl ErrorAnswer<UpdateMeResponse> for ChangeEmailError {
    fn answer(self) -> Result<UpdateMeResponse, ApiError> {
        match self {
            Self::IncorrectPassword => Ok(UpdateMeResponse::IncorrectPassword(detail_of(&self))),
            Self::Duplicate { .. } => Ok(UpdateMeResponse::Conflict(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<ChangePasswordResponse> for ChangePasswordError {
    fn answer(self) -> Result<ChangePasswordResponse, ApiError> {
        match self {
            Self::IncorrectPassword => {
                Ok(ChangePasswordResponse::IncorrectPassword(detail_of(&self)))
            }
            Self::Unknown(err) => Err(err.into()),
        }
    }
}

impl ErrorAnswer<DeleteMeResponse> for DeleteAccountError {
    fn answer(self) -> Result<DeleteMeResponse, ApiError> {
        match self {
            Self::IncorrectPassword => Ok(DeleteMeResponse::IncorrectPassword(detail_of(&self))),
            Self::LastAdmin => Ok(DeleteMeResponse::Conflict(detail_of(&self))),
            Self::Unknown(err) => Err(err.into()),
        }
    }
}
