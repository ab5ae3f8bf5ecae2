//! Who is calling: a [`Principal`], made with where its request comes from, and the
//! [`LoginPrincipal`] that operations on sessions take, which a personal access token cannot be.

use std::ops::Deref;

use crate::{
    accounts::User,
    events::{EventContext, NewSecurityEvent, RequestOrigin, SecurityEventKind},
    personal_tokens::PersonalTokenId,
    scope::{Scope, Scopes},
    sessions::SessionId,
};

/// What the caller authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An access token of a password login: its session.
    Session(SessionId),
    /// A personal access token, which belongs to no login.
    PersonalToken(PersonalTokenId),
}

/// The authenticated caller of a protected operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: User,
    pub credential: Credential,
    pub scopes: Scopes,
    /// Where the request comes from.
    pub origin: RequestOrigin,
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// The session of the login the caller's token belongs to; `None` for a personal access
    /// token.
    pub fn session_id(&self) -> Option<SessionId> {
        match self.credential {
            Credential::Session(id) => Some(id),
            Credential::PersonalToken(_) => None,
        }
    }

    /// The caller as a password login, which operations on sessions take; `None` for a
    /// personal access token's caller.
    pub fn into_login(self) -> Option<LoginPrincipal> {
        match self.credential {
            Credential::Session(session_id) => Some(LoginPrincipal {
                principal: self,
                session_id,
            }),
            Credential::PersonalToken(_) => None,
        }
    }

    /// An event of the caller's own account, from this request and session.
    pub fn event(&self, kind: SecurityEventKind) -> NewSecurityEvent {
        self.event_about(kind, self.session_id())
    }

    /// An event of the caller's own account, from this request, about session `session_id`.
    pub fn event_about(
        &self,
        kind: SecurityEventKind,
        session_id: Option<SessionId>,
    ) -> NewSecurityEvent {
        NewSecurityEvent::now(
            self.user.id,
            kind,
            EventContext::of(&self.origin, session_id),
        )
    }
}

/// A caller that logged in with a password: its session cannot be missing. Operations on
/// sessions (and the account's security) take it; a personal access token never makes one.
/// Everything else about the caller is its [`Principal`], which it dereferences to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPrincipal {
    principal: Principal,
    session_id: SessionId,
}

impl LoginPrincipal {
    /// The caller of session `session_id`, its request from `origin`.
    pub fn new(user: User, session_id: SessionId, scopes: Scopes, origin: RequestOrigin) -> Self {
        Self {
            principal: Principal {
                user,
                credential: Credential::Session(session_id),
                scopes,
                origin,
            },
            session_id,
        }
    }

    /// The caller's session.
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn into_principal(self) -> Principal {
        self.principal
    }
}

impl Deref for LoginPrincipal {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl From<LoginPrincipal> for Principal {
    fn from(login: LoginPrincipal) -> Self {
        login.principal
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::accounts::{EmailAddress, UserId};

    fn ann() -> User {
        User {
            id: UserId::new(1),
            email: EmailAddress::new("ann@example.com").unwrap(),
            created_at: Utc::now(),
            is_active: true,
            is_admin: false,
            email_verified: true,
        }
    }

    #[test]
    fn only_a_password_login_is_a_login_principal() {
        let session_id = SessionId::random();
        let origin = RequestOrigin::new(None, Some("curl/8"));
        let login = LoginPrincipal::new(ann(), session_id, Scopes::empty(), origin.clone());
        assert_eq!(login.session_id(), session_id);
        assert_eq!(login.principal().session_id(), Some(session_id));
        let principal: Principal = login.clone().into();
        assert_eq!(principal.clone().into_login(), Some(login));
        assert_eq!(
            principal
                .event(SecurityEventKind::Logout)
                .context
                .session_id,
            Some(session_id)
        );

        let personal = Principal {
            user: ann(),
            credential: Credential::PersonalToken(PersonalTokenId::new(3)),
            scopes: Scopes::empty(),
            origin,
        };
        assert_eq!(personal.session_id(), None);
        assert_eq!(personal.into_login(), None);
    }
}
