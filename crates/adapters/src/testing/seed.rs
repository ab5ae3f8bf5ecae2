//! What a repository test starts from: [`Seed`], and the values it builds, for the contract
//! tests of this crate (the repositories, mail, the account's bounds).

use chrono::{TimeDelta, Utc};
use warden_domain::{
    accounts::{EmailAddress, NewUser, PasswordHash, User, UserId, UserRepository},
    crypto::SecretHash,
    posts::{Post, PostContent, PostDraft, PostRepository, PostTitle},
    scope::Scopes,
    sessions::{
        AuthMethods, ClientId, NewRefreshToken, NewSession, SessionId, SessionOrigin,
        SessionRepository,
    },
};

use crate::Store;

/// The cap the app holds accounts' sessions to by default (`MAX_SESSIONS_PER_ACCOUNT`).
pub const MAX_SESSIONS: u32 = 100;

/// What a test starts from, put in its store: `seed.user("ann")`, `seed.post(&ann, "Hello")`.
#[derive(Debug)]
pub struct Seed<'a>(pub &'a Store);

impl Seed<'_> {
    /// `<name>@example.com`: an active, unverified non-admin with the password hash
    /// `$argon2id$hash-of-<name>@example.com`.
    pub async fn user(&self, name: &str) -> User {
        let email = format!("{name}@example.com");
        self.0.create_user(&new_user(&email)).await.unwrap()
    }

    /// As [`Seed::user`], an admin.
    pub async fn admin(&self, name: &str) -> User {
        let email = format!("{name}@example.com");
        let admin = NewUser {
            is_admin: true,
            ..new_user(&email)
        };
        self.0.create_user(&admin).await.unwrap()
    }

    /// A session of `user` whose refresh token is `first` (stored as `hash-of-<first>`).
    pub async fn session(&self, user: &User, first: &str) -> SessionId {
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
    pub async fn post(&self, owner: &User, title: &str) -> Post {
        self.0
            .create_post(owner.id, &draft(title, true))
            .await
            .unwrap()
    }
}

/// An active, unverified non-admin at `email`, whose password hash is
/// `$argon2id$hash-of-<email>`.
pub fn new_user(email: &str) -> NewUser {
    NewUser {
        email: EmailAddress::new(email).unwrap(),
        password_hash: PasswordHash::new(format!("$argon2id$hash-of-{email}")),
        is_admin: false,
        email_verified: false,
    }
}

/// A password login of `user_id`'s from a phone, now, for 30 days.
pub fn new_session(user_id: UserId) -> NewSession {
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

/// The refresh token called `name`, stored as `hash-of-<name>`, live for `expires_in`.
pub fn refresh_token(name: &str, expires_in: TimeDelta) -> NewRefreshToken {
    NewRefreshToken {
        hash: SecretHash::new(format!("hash-of-{name}")),
        expires_at: Utc::now() + expires_in,
    }
}

/// A post titled `title`, with content `content of <title>`.
pub fn draft(title: &str, published: bool) -> PostDraft {
    PostDraft {
        title: PostTitle::new(title.into()).unwrap(),
        content: PostContent::new(format!("content of {title}")).unwrap(),
        published,
    }
}
