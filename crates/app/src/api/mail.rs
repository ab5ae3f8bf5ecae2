//! Email (contract section 12): password reset, email verification and confirmed email change.
//! With no `SMTP_URL` every operation here answers 501.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::{
    accounts::{EmailAddress, Password},
    mail::{ConfirmTokenError, ResendVerificationError, ResetRequestError},
};

use super::ApiTags;
use super::body::JsonBody;
use super::error::{ApiError, ErrorBody, ServerError, detail, detail_of};
use super::security::{ApiScope, Caller};
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;
use crate::throttle::retry_after_seconds;

/// The answer to a reset request, whatever the account: it tells nothing of whether one exists.
pub const RESET_REQUESTED: &str = "if the account exists, a message is on its way";
/// How long after its answer a reset request is looked up.
const RESET_DEFERRED: std::time::Duration = std::time::Duration::from_millis(50);
const NOT_CONFIGURED: &str = "email is not configured";
const TOO_MANY: &str = "too many messages asked for; try again later";

/// A request for a password reset mail.
#[derive(Debug, Object)]
struct ResetRequest {
    /// The account's email.
    email: String,
}

/// A new password, with the token a reset mail carried.
#[derive(Debug, Object)]
struct ResetConfirm {
    /// The token from the reset mail.
    #[oai(write_only)]
    token: String,
    /// 8 to 1024 bytes.
    #[oai(write_only)]
    new_password: String,
}

/// The token a verification or email change mail carried.
#[derive(Debug, Object)]
struct TokenConfirm {
    #[oai(write_only)]
    token: String,
}

/// Mail is being sent.
#[derive(Debug, Object)]
pub(crate) struct Notice {
    detail: String,
}

pub(crate) fn notice(text: &str) -> Json<Notice> {
    Json(Notice {
        detail: text.to_owned(),
    })
}

#[derive(Debug, ApiResponse)]
enum ResetRequestResponse {
    /// Always the same answer: a mail is queued if an active account has this email.
    #[oai(status = 202)]
    Accepted(Json<Notice>),
    /// The email is not a valid address.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// Too many requests from this client address or for this email; retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Email is not configured on this server.
    #[oai(status = 501)]
    NotImplemented(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum ConfirmResponse {
    /// Done.
    #[oai(status = 204)]
    Done,
    /// `invalid or expired token`: unknown, spent, expired, or its account is disabled.
    #[oai(status = 400)]
    InvalidToken(Json<ErrorBody>),
    /// The new address was taken by another account since the change was asked for.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The new password is not 8 to 1024 bytes long.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// Email is not configured on this server.
    #[oai(status = 501)]
    NotImplemented(Json<ErrorBody>),
}

#[derive(Debug, ApiResponse)]
enum ResendResponse {
    /// A new verification mail is on its way to your address.
    #[oai(status = 202)]
    Accepted(Json<Notice>),
    /// Your address is verified already.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many requests from this client address or for this email; retry after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Email is not configured on this server.
    #[oai(status = 501)]
    NotImplemented(Json<ErrorBody>),
}

#[derive(Debug, Default)]
pub struct MailApi;

#[OpenApi(tag = "ApiTags::Users")]
impl MailApi {
    /// Ask for a password reset
    ///
    /// Mails a single-use reset token to the account with this email, if there is an active
    /// one. The answer is the same either way.
    #[oai(
        path = "/password-reset",
        method = "post",
        operation_id = "request_password_reset"
    )]
    async fn request_reset(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        body: JsonBody<ResetRequest>,
    ) -> Result<ResetRequestResponse, ServerError> {
        let Some(email) = &state.email else {
            return Ok(ResetRequestResponse::NotImplemented(detail(NOT_CONFIGURED)));
        };
        let raw = body.0.email;
        if let Some(wait) = throttled(&state, &origin, &raw).await? {
            return Ok(ResetRequestResponse::TooManyRequests(
                detail(TOO_MANY),
                wait,
            ));
        }
        let address = match EmailAddress::new(&raw) {
            Ok(address) => address,
            Err(err) => {
                return Ok(ResetRequestResponse::Invalid(detail(format!(
                    "email: {}",
                    err.reason
                ))));
            }
        };
        // The answer does not wait: whether the address is an active account's, and so
        // whether a token is written and a mail queued, is decided after it, so that every
        // address gets the same answer in the same time. The work starts once the answer is
        // out, so that it never shares the CPU with it either.
        let flows = email.flows.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RESET_DEFERRED).await;
            if let Err(ResetRequestError::Unknown(err)) =
                flows.request_password_reset(&address).await
            {
                tracing::warn!(error = format!("{err:#}"), "cannot queue a password reset");
            }
        });
        Ok(ResetRequestResponse::Accepted(notice(RESET_REQUESTED)))
    }

    /// Reset your password
    ///
    /// Sets a new password with the token of a reset mail. Every session of the account ends,
    /// and its address counts as verified.
    #[oai(
        path = "/password-reset/confirm",
        method = "post",
        operation_id = "confirm_password_reset"
    )]
    async fn confirm_reset(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        body: JsonBody<ResetConfirm>,
    ) -> Result<ConfirmResponse, ServerError> {
        let Some(email) = &state.email else {
            return Ok(ConfirmResponse::NotImplemented(detail(NOT_CONFIGURED)));
        };
        let ResetConfirm {
            token,
            new_password,
        } = body.0;
        let password = match Password::new(new_password) {
            Ok(password) => password,
            Err(err) => {
                return Ok(ConfirmResponse::Invalid(detail(format!(
                    "new_password: {err}"
                ))));
            }
        };
        let origin = origin.into_request();
        confirmed(email.flows.reset_password(&token, &password, &origin).await)
    }

    /// Verify your email address
    ///
    /// With the token of a verification mail.
    #[oai(
        path = "/email-verification/confirm",
        method = "post",
        operation_id = "confirm_email_verification"
    )]
    async fn confirm_verification(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        body: JsonBody<TokenConfirm>,
    ) -> Result<ConfirmResponse, ServerError> {
        let Some(email) = &state.email else {
            return Ok(ConfirmResponse::NotImplemented(detail(NOT_CONFIGURED)));
        };
        let origin = origin.into_request();
        confirmed(email.flows.verify_email(&body.0.token, &origin).await)
    }

    /// Confirm a change of email
    ///
    /// With the token the mail to the new address carried: the account moves to it, verified.
    #[oai(
        path = "/email-change/confirm",
        method = "post",
        operation_id = "confirm_email_change"
    )]
    async fn confirm_change(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        body: JsonBody<TokenConfirm>,
    ) -> Result<ConfirmResponse, ServerError> {
        let Some(email) = &state.email else {
            return Ok(ConfirmResponse::NotImplemented(detail(NOT_CONFIGURED)));
        };
        let origin = origin.into_request();
        confirmed(
            email
                .flows
                .confirm_email_change(&body.0.token, &origin)
                .await,
        )
    }

    /// Send a new verification mail
    ///
    /// To your account's address, unless it is verified already.
    #[oai(
        path = "/users/me/email-verification",
        method = "post",
        operation_id = "resend_email_verification"
    )]
    async fn resend_verification(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: Caller,
        origin: ClientOrigin,
        state: Data<&AppState>,
    ) -> Result<ResendResponse, ApiError> {
        let Some(email) = &state.email else {
            return Ok(ResendResponse::NotImplemented(detail(NOT_CONFIGURED)));
        };
        let principal = auth.principal();
        if principal.user.email_verified {
            return Ok(ResendResponse::Conflict(detail_of(
                &ResendVerificationError::AlreadyVerified,
            )));
        }
        if let Some(wait) = throttled(&state, &origin, principal.user.email.as_str()).await? {
            return Ok(ResendResponse::TooManyRequests(detail(TOO_MANY), wait));
        }
        match email.flows.resend_verification(principal).await {
            Ok(()) => Ok(ResendResponse::Accepted(notice(
                "a verification message is on its way",
            ))),
            Err(ResendVerificationError::AlreadyVerified) => Ok(ResendResponse::Conflict(
                detail_of(&ResendVerificationError::AlreadyVerified),
            )),
            Err(ResendVerificationError::Unknown(err)) => Err(err.into()),
        }
    }
}

/// Counts a mail request (reset, verification, email change) for `email` from the client of
/// `req`: how many seconds it must wait, if it ran out.
pub(super) async fn throttled(
    state: &AppState,
    origin: &ClientOrigin,
    email: &str,
) -> anyhow::Result<Option<u64>> {
    let address = origin.address();
    let wait = state.throttle.mail_request(email, address).await?;
    if wait.is_some() {
        tracing::warn!(?address, "mail request throttled");
        metrics::counter!("warden_throttled_total", "kind" => "mail_request").increment(1);
    }
    Ok(wait.map(retry_after_seconds))
}

fn confirmed(outcome: Result<(), ConfirmTokenError>) -> Result<ConfirmResponse, ServerError> {
    match outcome {
        Ok(()) => Ok(ConfirmResponse::Done),
        Err(err @ ConfirmTokenError::InvalidToken) => {
            Ok(ConfirmResponse::InvalidToken(detail_of(&err)))
        }
        Err(err @ ConfirmTokenError::Duplicate { .. }) => {
            Ok(ConfirmResponse::Conflict(detail_of(&err)))
        }
        Err(ConfirmTokenError::Unknown(err)) => Err(err.into()),
    }
}
