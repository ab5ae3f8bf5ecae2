//! What the contract's modules share: the imports, the caps, the [`Seed`] a test starts from,
//! and the helpers that build sessions, posts and events.

pub(crate) use chrono::{TimeDelta, Utc};
pub(crate) use warden_adapters::Store;
pub(crate) use warden_domain::{
    accounts::{EmailAddress, PasswordHash, UserFlags, UserId},
    crypto::SecretHash,
    events::{EventContext, EventId, EventLimit, EventQuery, NewSecurityEvent, SecurityEventKind},
    personal_tokens::PersonalTokenPage,
    posts::{Page, PostId, PostQuery, SearchTerm},
    scope::Scopes,
    sessions::{
        AuthMethods, ClientId, NewSession, Rotation, SessionId, SessionOrigin, SessionPage,
    },
};
pub(crate) use warden_domain::{
    accounts::{SaveUserError, UserRepository},
    events::SecurityEventRepository,
    mfa::MfaRepository,
    personal_tokens::PersonalTokenRepository,
    posts::{AddVoteError, PostRepository, VoteRepository},
    sessions::SessionRepository,
};

pub(crate) use warden_adapters::testing::{
    MAX_SESSIONS, Seed, draft, new_session, new_user, refresh_token,
};

/// The cap the app holds accounts' personal tokens to by default (`MAX_PERSONAL_TOKENS`).
pub(crate) const MAX_TOKENS: u32 = 50;

/// Presents the refresh token called `presented` (stored as `hash-of-<name>`) and, if it is
/// live, stores `next` after it, valid for a day.
pub(crate) async fn rotate(store: &Store, presented: &str, next: &str) -> Rotation {
    let presented = SecretHash::new(format!("hash-of-{presented}"));
    store
        .rotate_refresh_token(
            &presented,
            &refresh_token(next, TimeDelta::days(1)),
            Utc::now(),
        )
        .await
        .unwrap()
}

pub(crate) fn query(viewer: UserId, search: Option<&str>, limit: u32, skip: u64) -> PostQuery {
    PostQuery {
        viewer,
        search: search.and_then(|search| SearchTerm::new(search).unwrap()),
        page: Page::new(limit, skip).unwrap(),
    }
}

pub(crate) fn event(
    user: UserId,
    kind: SecurityEventKind,
    session_id: Option<SessionId>,
) -> NewSecurityEvent {
    NewSecurityEvent::now(
        user,
        kind,
        EventContext {
            ip_address: Some("2001:db8::9".parse().unwrap()),
            user_agent: Some("Firefox/140.0 ünïcode".into()),
            session_id,
        },
    )
}

/// Every event of the store, newest first (within the last day).
pub(crate) async fn events_of(
    store: &Store,
    user_id: Option<UserId>,
) -> Vec<warden_domain::events::SecurityEvent> {
    store
        .list_events(&EventQuery {
            user_id,
            kind: None,
            before: None,
            limit: EventLimit::new(200).unwrap(),
            since: Utc::now() - TimeDelta::days(1),
        })
        .await
        .unwrap()
}

pub(crate) fn kinds(events: &[warden_domain::events::SecurityEvent]) -> Vec<SecurityEventKind> {
    events.iter().map(|event| event.kind).collect()
}
