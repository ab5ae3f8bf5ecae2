//! The grants of the token endpoint: password (with an optional second factor), refresh, and
//! the second step of a login with a second factor.

use std::net::IpAddr;

use poem::Request;
use poem_openapi::payload::Json;
use warden_domain::services::{
    LoginError, MfaLogin, PasswordLogin, RefreshError, RefreshLogin, TokenGrant,
};
use warden_domain::text::{self, TextKind};
use warden_domain::{ClientId, Password, SessionOrigin};

use super::{LoginResponse, OAuthErrorBody, TokenRequest};
use crate::AppState;
use crate::throttle::retry_after_seconds;

/// The grant type of the second step of a login with a second factor.
pub(crate) const MFA_OTP_GRANT: &str = "urn:warden:params:oauth:grant-type:mfa-otp";

pub(super) async fn password_grant(
    state: &AppState,
    req: &Request,
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
    // Refused before the password is checked: a throttled guess costs the attacker a request
    // and us nothing.
    let address = state.throttle.client_address(req);
    let blocked = match state.throttle.login_blocked_for(username, address).await {
        Ok(blocked) => blocked,
        Err(err) => return err.into(),
    };
    if let Some(wait) = blocked {
        return throttled(address, wait);
    }
    let request = state.throttle.request_origin(req);
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
    answer(state, outcome, Some(username), address).await
}

/// The second step of a login with a second factor: `mfa_token` and `otp` (contract section
/// 10). Throttled by client address before, and a wrong code counted against the address and
/// the account's email as a failed login, so that guessing codes spends the same budgets as
/// guessing passwords.
pub(super) async fn mfa_otp_grant(
    state: &AppState,
    req: &Request,
    form: &TokenRequest,
) -> LoginResponse {
    let (mfa_token, otp) = match (form.required("mfa_token"), form.required("otp")) {
        (Ok(mfa_token), Ok(otp)) => (mfa_token, otp),
        (Err(missing), _) | (_, Err(missing)) => return missing,
    };
    let address = state.throttle.client_address(req);
    match state.throttle.login_address_blocked_for(address).await {
        Ok(None) => {}
        Ok(Some(wait)) => return throttled(address, wait),
        Err(err) => return err.into(),
    }
    let request = state.throttle.request_origin(req);
    let login = MfaLogin {
        mfa_token: mfa_token.to_owned().into(),
        otp: otp.to_owned().into(),
        origin: SessionOrigin {
            user_agent: request.user_agent,
            ip_address: request.ip_address,
            ..SessionOrigin::default()
        },
    };
    let outcome = state.auth.login_with_second_factor(login).await;
    answer(state, outcome, None, address).await
}

/// The answer to a login, counting a failure against `username` (the form's, or for a wrong
/// second factor the account's email) and `address`.
async fn answer(
    state: &AppState,
    outcome: Result<TokenGrant, LoginError>,
    username: Option<&str>,
    address: Option<IpAddr>,
) -> LoginResponse {
    let err = match outcome {
        Ok(grant) => {
            tracing::info!(session_id = %grant.session_id, "login succeeded");
            return LoginResponse::Ok(Json(grant.into()));
        }
        Err(err) => err,
    };
    let failed = match &err {
        LoginError::InvalidCredentials => username,
        LoginError::InvalidSecondFactor { username } => Some(username.as_str()),
        LoginError::MfaRequired { .. } => {
            tracing::info!("login needs a second factor");
            None
        }
        _ => None,
    };
    if let Some(username) = failed {
        tracing::info!("login refused");
        // Uncounted, a failure would be a free guess: better no answer than that one.
        if let Err(err) = state.throttle.login_failed(username, address).await {
            return err.into();
        }
    }
    err.into()
}

/// 429 for a login whose budget is spent.
fn throttled(address: Option<IpAddr>, wait: std::time::Duration) -> LoginResponse {
    tracing::warn!(?address, "login throttled");
    metrics::counter!("warden_throttled_total", "kind" => "login").increment(1);
    LoginResponse::TooManyRequests(
        OAuthErrorBody::json("slow_down", "too many failed logins; try again later"),
        retry_after_seconds(wait),
    )
}

pub(super) async fn refresh_grant(
    state: &AppState,
    req: &Request,
    form: &TokenRequest,
) -> LoginResponse {
    let refresh_token = match form.required("refresh_token") {
        Ok(token) => token,
        Err(missing) => return missing,
    };
    let refresh = RefreshLogin {
        refresh_token: refresh_token.to_owned(),
        scope: form.optional("scope").map(str::to_owned),
        origin: state.throttle.request_origin(req),
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
