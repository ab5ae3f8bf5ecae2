//! The security event log (contract section 11): the caller's own events, and every account's
//! for admins. Pages go newest first; the next page starts `before` the last id seen.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use warden_domain::{
    accounts::UserId,
    events::{EventId, EventLimit, EventPage, SecurityEvent, SecurityEventKind},
};

use super::ApiTags;
use super::error::ApiError;
use super::security::{ApiScope, Caller};
use crate::api::state::AppState;

/// Something that happened to an account. It never holds a password, code or token.
#[derive(Debug, Object)]
pub struct EventView {
    /// Ids grow with time: pass the last one seen as `before` for the next page.
    id: i64,
    /// `login`, `login_failed`, `logout`, `session_revoked`, `refresh_reuse_detected`,
    /// `password_changed`, `password_reset`, `email_changed`, `email_verified`, `mfa_enabled`,
    /// `mfa_disabled`, `recovery_code_used`, `account_disabled`, `account_enabled`,
    /// `admin_granted`, `admin_revoked`, `personal_token_created` or `personal_token_revoked`.
    #[oai(rename = "type")]
    kind: String,
    at: DateTime<Utc>,
    /// The client address of the request that caused it; null for an admin's action.
    #[oai(nullable)]
    ip_address: Option<String>,
    /// The `User-Agent` of that request, cut to 256 characters; null for an admin's action.
    #[oai(nullable)]
    user_agent: Option<String>,
    /// The session it concerns: the one opened or ended, or the one acted from.
    #[oai(nullable)]
    session_id: Option<String>,
}

impl From<&SecurityEvent> for EventView {
    fn from(event: &SecurityEvent) -> Self {
        Self {
            id: event.id.get(),
            kind: event.kind.as_str().to_owned(),
            at: event.at,
            ip_address: event.context.ip_address.map(|ip| ip.to_string()),
            user_agent: event.context.user_agent.clone(),
            session_id: event.context.session_id.map(|id| id.to_string()),
        }
    }
}

/// A type of event, as the admin listing filters by it.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
enum EventType {
    Login,
    LoginFailed,
    Logout,
    SessionRevoked,
    RefreshReuseDetected,
    PasswordChanged,
    PasswordReset,
    EmailChanged,
    EmailVerified,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    AccountDisabled,
    AccountEnabled,
    AdminGranted,
    AdminRevoked,
    PersonalTokenCreated,
    PersonalTokenRevoked,
}

impl From<EventType> for SecurityEventKind {
    fn from(kind: EventType) -> Self {
        match kind {
            EventType::Login => Self::Login,
            EventType::LoginFailed => Self::LoginFailed,
            EventType::Logout => Self::Logout,
            EventType::SessionRevoked => Self::SessionRevoked,
            EventType::RefreshReuseDetected => Self::RefreshReuseDetected,
            EventType::PasswordChanged => Self::PasswordChanged,
            EventType::PasswordReset => Self::PasswordReset,
            EventType::EmailChanged => Self::EmailChanged,
            EventType::EmailVerified => Self::EmailVerified,
            EventType::MfaEnabled => Self::MfaEnabled,
            EventType::MfaDisabled => Self::MfaDisabled,
            EventType::RecoveryCodeUsed => Self::RecoveryCodeUsed,
            EventType::AccountDisabled => Self::AccountDisabled,
            EventType::AccountEnabled => Self::AccountEnabled,
            EventType::AdminGranted => Self::AdminGranted,
            EventType::AdminRevoked => Self::AdminRevoked,
            EventType::PersonalTokenCreated => Self::PersonalTokenCreated,
            EventType::PersonalTokenRevoked => Self::PersonalTokenRevoked,
        }
    }
}

/// An event as an admin sees it: with its account.
#[derive(Debug, Object)]
pub struct AdminEventView {
    /// The account it happened to.
    user_id: i64,
    #[oai(flatten)]
    event: EventView,
}

#[derive(Debug, ApiResponse)]
enum ListEventsResponse {
    /// One page of events, newest first.
    #[oai(status = 200)]
    Ok(Json<Vec<EventView>>),
}

#[derive(Debug, ApiResponse)]
enum AdminListEventsResponse {
    /// One page of events, newest first.
    #[oai(status = 200)]
    Ok(Json<Vec<AdminEventView>>),
}

fn default_event_limit() -> i64 {
    EventLimit::DEFAULT.get().into()
}

/// The page `limit` and `before` name. The document's validators bound `limit` already; the
/// domain's type says so once more.
fn page(limit: i64, before: Option<i64>) -> Result<EventPage, ApiError> {
    let limit = EventLimit::new(limit).map_err(|err| ApiError::invalid(format!("limit: {err}")))?;
    Ok(EventPage {
        before: before.map(EventId::new),
        limit,
    })
}

#[derive(Debug, Default)]
pub struct EventsApi;

#[OpenApi(tag = "ApiTags::Users")]
impl EventsApi {
    /// Your security events
    ///
    /// What happened to your account, newest first: logins and refused logins, sessions
    /// ended, password and email changes, second factors, and an admin's changes. Events are
    /// kept for `EVENT_RETENTION_DAYS` (90 by default).
    #[oai(
        path = "/users/me/events",
        method = "get",
        operation_id = "list_my_events"
    )]
    async fn own(
        &self,
        #[oai(scope = "ApiScope::PROFILE")] auth: Caller,
        state: Data<&AppState>,
        /// How many events to return, 1 to 200.
        #[oai(
            default = "default_event_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
        /// Only events older than this one: the `id` of the last event of the previous page.
        before: Query<Option<i64>>,
    ) -> Result<ListEventsResponse, ApiError> {
        let events = state
            .events
            .own_events(auth.principal(), page(limit.0, before.0)?)
            .await?;
        Ok(ListEventsResponse::Ok(Json(
            events.iter().map(EventView::from).collect(),
        )))
    }

    /// Every account's security events
    ///
    /// The events of every account, newest first, optionally of one account (`user_id`) or
    /// one type (`type`).
    #[oai(
        path = "/admin/events",
        method = "get",
        operation_id = "list_events",
        tag = "ApiTags::Admin"
    )]
    async fn all(
        &self,
        #[oai(scope = "ApiScope::ADMIN")] _auth: Caller,
        state: Data<&AppState>,
        /// Only this account's events.
        user_id: Query<Option<i64>>,
        /// Only events of this type.
        #[oai(name = "type")]
        kind: Query<Option<EventType>>,
        /// How many events to return, 1 to 200.
        #[oai(
            default = "default_event_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<i64>,
        /// Only events older than this one: the `id` of the last event of the previous page.
        before: Query<Option<i64>>,
    ) -> Result<AdminListEventsResponse, ApiError> {
        let kind = kind.0.map(SecurityEventKind::from);
        let events = state
            .events
            .all_events(user_id.0.map(UserId::new), kind, page(limit.0, before.0)?)
            .await?;
        Ok(AdminListEventsResponse::Ok(Json(
            events
                .iter()
                .map(|event| AdminEventView {
                    user_id: event.user_id.get(),
                    event: EventView::from(event),
                })
                .collect(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ParseFromParameter;

    use super::*;

    #[test]
    fn the_filter_names_every_kind_of_event_as_the_domain_does() {
        for kind in SecurityEventKind::ALL {
            let parsed = EventType::parse_from_parameter(kind.as_str()).unwrap();
            assert_eq!(SecurityEventKind::from(parsed), kind);
        }
    }
}
