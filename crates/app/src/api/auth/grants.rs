//! The grants of the token endpoint: password (with an optional second factor), refresh, and
//! the second step of a login with a second factor.

use poem_openapi::payload::Json;
use secrecy::SecretString;
use warden_domain::{
    accounts::Password,
    sessions::{
        ClientId, LoginError, MfaLogin, PasswordLogin, RefreshError, RefreshLogin, SessionOrigin,
        TokenGrant,
    },
    text::{self, TextKind},
};

use super::{LoginResponse, OAuthErrorBody, TokenRequest};
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;
use crate::throttle::{Reservation, Throttled};

/// The grant type of the second step of a login with a second factor.
pub(crate) const MFA_OTP_GRANT: &str = "urn:warden:params:oauth:grant-type:mfa-otp";

pub(super) async fn password_grant(
    state: &AppState,
    origin: &ClientOrigin,
    form: &TokenRequest,
    client_id: ClientId,
) -> LoginResponse {
    let (username, password) = match (form.required("username"), form.required("password")) {
        (Ok(username), Ok(password)) => (username, password),
        (Err(missing), _) | (_, Err(missing)) => return missing,
    };
    // Checked before anything else: a huge password must never reach the hasher, and a
    // username the text model refuses (a NUL, say) never reaches the database.
    let Ok(password) = Password::candidate(password.to_owned()) else {
        return LoginResponse::invalid_request("the password is longer than 1024 bytes");
    };
    if let Err(err) = text::check(username, TextKind::Line) {
        return LoginResponse::invalid_request(format!("the username {err}"));
    }
    // A unit of the budgets is taken before the password is checked, and given back if it was
    // right: a throttled guess costs the attacker a request and us nothing, and a burst of
    // guesses gets no more checks than the budgets have units.
    let address = origin.address();
    let reservation = match state.throttle.reserve_login(username, address).await {
        Ok(Ok(reservation)) => reservation,
        Ok(Err(throttled)) => return too_many_requests(throttled),
        Err(err) => return err.into(),
    };
    let request = origin.request().clone();
    let login = PasswordLogin {
        username: username.to_owned(),
        password,
        scope: form.optional("scope").map(str::to_owned),
        otp: form.optional("otp").map(|otp| otp.to_owned().into()),
        origin: SessionOrigin {
            client_id,
            user_agent: request.user_agent,
            ip_address: request.ip_address,
            ..SessionOrigin::default()
        },
    };
    let outcome = state.auth.login(login).await;
    answer(outcome, reservation).await
}

/// The second step of a login with a second factor: `mfa_token` and `otp` (contract section
/// 10). The code spends the failed-login budgets of the account the token leads to (its
/// email) and of the client address, reserved before it is checked as a password is: guessing
/// codes costs what guessing passwords costs, from however many addresses.
pub(super) async fn mfa_otp_grant(
    state: &AppState,
    origin: &ClientOrigin,
    form: &TokenRequest,
) -> LoginResponse {
    let (mfa_token, otp) = match (form.required("mfa_token"), form.required("otp")) {
        (Ok(mfa_token), Ok(otp)) => (mfa_token, otp),
        (Err(missing), _) | (_, Err(missing)) => return missing,
    };
    let mfa_token: SecretString = mfa_token.to_owned().into();
    let address = origin.address();
    let account = match state.auth.second_step_account(&mfa_token).await {
        Ok(account) => account,
        Err(err) => return err.into(),
    };
    let reservation = match state
        .throttle
        .reserve_second_step(account.as_ref(), address)
        .await
    {
        Ok(Ok(reservation)) => reservation,
        Ok(Err(throttled)) => return too_many_requests(throttled),
        Err(err) => return err.into(),
    };
    let request = origin.request().clone();
    let login = MfaLogin {
        mfa_token,
        otp: otp.to_owned().into(),
        origin: SessionOrigin {
            user_agent: request.user_agent,
            ip_address: request.ip_address,
            ..SessionOrigin::default()
        },
    };
    let outcome = state.auth.login_with_second_factor(login).await;
    answer(outcome, reservation).await
}

/// The answer to a login, settling its reservation: a wrong password or code keeps the units
/// spent, anything else gives them back.
async fn answer(
    outcome: Result<TokenGrant, LoginError>,
    reservation: Reservation,
) -> LoginResponse {
    let failed = matches!(
        outcome,
        Err(LoginError::InvalidCredentials | LoginError::InvalidSecondFactor { .. })
    );
    reservation.settle(failed).await;
    match outcome {
        Ok(grant) => {
            tracing::info!(session_id = %grant.session_id, "login succeeded");
            LoginResponse::Ok(Json(grant.into()))
        }
        Err(err) => {
            match &err {
                LoginError::MfaRequired { .. } => tracing::info!("login needs a second factor"),
                _ if failed => tracing::info!("login refused"),
                _ => {}
            }
            err.into()
        }
    }
}

/// 429 for a login whose budget is spent.
fn too_many_requests(throttled: Throttled) -> LoginResponse {
    LoginResponse::TooManyRequests(
        OAuthErrorBody::json("slow_down", "too many failed logins; try again later"),
        throttled.retry_after(),
    )
}

pub(super) async fn refresh_grant(
    state: &AppState,
    origin: &ClientOrigin,
    form: &TokenRequest,
) -> LoginResponse {
    let refresh_token = match form.required("refresh_token") {
        Ok(token) => token,
        Err(missing) => return missing,
    };
    let refresh = RefreshLogin {
        refresh_token: refresh_token.to_owned(),
        scope: form.optional("scope").map(str::to_owned),
        origin: origin.request().clone(),
    };
    match state.auth.refresh(refresh).await {
        Ok(grant) => {
            tracing::info!(session_id = %grant.session_id, "tokens refreshed");
            LoginResponse::Ok(Json(grant.into()))
        }
        Err(err) => {
            match &err {
                RefreshError::InvalidGrant => tracing::info!("refresh refused"),
                RefreshError::Replayed(session_id) => {
                    tracing::warn!(%session_id, "spent refresh token presented again: session ended");
                    metrics::counter!("warden_refresh_reuse_detected_total").increment(1);
                }
                RefreshError::InvalidScope(_) | RefreshError::Unknown(_) => {}
            }
            err.into()
        }
    }
}
