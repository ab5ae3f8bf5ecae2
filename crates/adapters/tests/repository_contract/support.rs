//! What the contract's modules share: the imports, the caps, the [`Seed`] a test starts from,
//! and the helpers that build sessions, posts and events.

pub(crate) use chrono::{TimeDelta, Utc};
pub(crate) use warden_adapters::Store;
pub(crate) use warden_domain::{
    accounts::{EmailAddress, NewUser, PasswordHash, User, UserFlags, UserId},
    crypto::SecretHash,
    events::{EventContext, EventId, EventLimit, EventQuery, NewSecurityEvent, SecurityEventKind},
    personal_tokens::PersonalTokenPage,
    posts::{Page, PostContent, PostDraft, PostId, PostQuery, PostTitle, SearchTerm},
    scope::Scopes,
    sessions::{
        AuthMethods, ClientId, NewRefreshToken, NewSession, Rotation, SessionId, SessionOrigin,
        SessionPage,
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

/// The caps the app holds accounts to by default (`MAX_SESSIONS_PER_ACCOUNT`,
/// `MAX_PERSONAL_TOKENS`).
pub(crate) const MAX_SESSIONS: u32 = 100;
pub(crate) const MAX_TOKENS: u32 = 50;

pub(crate) fn new_user(email: &str) -> NewUser {
    NewUser {
        email: EmailAddress::new(email).unwrap(),
        password_hash: PasswordHash::new(format!("$argon2id$hash-of-{email}")),
        is_admin: false,
        email_verified: false,
    }
}

pub(crate) fn new_session(user_id: UserId) -> NewSession {
    let now = Utc::now();
    NewSession {
        id: SessionId::random(),
        user_id,
        created_at: now,
        expires_at: now + TimeDelta::days(30),
        scopes: Scopes::parse("profile posts:read").unwrap(),
        origin: SessionOrigin {
            client_id: ClientId::new("mobile-app").unwrap(),
            user_agent: Some("Warden/1.0 (iPhone; iOS 19)".into()),
            ip_address: Some("2001:db8::7".parse().unwrap()),
            auth_methods: AuthMethods::Password,
        },
    }
}

pub(crate) fn refresh_token(name: &str, expires_in: TimeDelta) -> NewRefreshToken {
    NewRefreshToken {
        hash: SecretHash::new(format!("hash-of-{name}")),
        expires_at: Utc::now() + expires_in,
    }
}

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

/// What a test starts from, put in its store: `seed.user("ann")`, `seed.post(&ann, "Hello")`.
pub(crate) struct Seed<'a>(pub(crate) &'a Store);

impl Seed<'_> {
    /// `<name>@example.com`: an active, unverified non-admin with a fixed password hash.
    pub(crate) async fn user(&self, name: &str) -> User {
        let email = format!("{name}@example.com");
        self.0.create_user(&new_user(&email)).await.unwrap()
    }

    /// A session of `user` whose refresh token is `first` (stored as `hash-of-<first>`).
    pub(crate) async fn session(&self, user: &User, first: &str) -> SessionId {
        let new = new_session(user.id);
        self.0
            .create_session(
                &new,
                &refresh_token(first, TimeDelta::days(1)),
                MAX_SESSIONS,
                &[],
            )
            .await
            .unwrap();
        new.id
    }

    /// A published post of `owner`'s.
    pub(crate) async fn post(&self, owner: &User, title: &str) -> warden_domain::posts::Post {
        self.0
            .create_post(owner.id, &draft(title, true))
            .await
            .unwrap()
    }
}

pub(crate) fn draft(title: &str, published: bool) -> PostDraft {
    PostDraft {
        title: PostTitle::new(title.into()).unwrap(),
        content: PostContent::new(format!("content of {title}")).unwrap(),
        published,
    }
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
