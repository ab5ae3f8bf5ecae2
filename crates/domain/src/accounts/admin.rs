//! User administration: for callers holding the `admin` scope, and for the command line.

use std::sync::Arc;

use chrono::Utc;

use crate::{
    accounts::{User, UserChangeError, UserFlags, UserId, UserRepository},
    error::Unknown,
    events::{EventContext, NewSecurityEvent, SecurityEventKind},
    posts::Page,
    sessions::{Principal, SessionRepository},
};

#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    #[error("User with id: {0} does not exist")]
    NotFound(UserId),
    /// Admins may not disable or demote themselves: it could leave nobody to undo it.
    #[error("admins cannot disable or demote themselves")]
    SelfLockout,
    /// The change would leave no active admin (two admins demoting each other at once).
    #[error("at least one active admin must remain")]
    LastAdmin,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<UserChangeError> for UpdateUserError {
    fn from(err: UserChangeError) -> Self {
        match err {
            UserChangeError::LastAdmin => Self::LastAdmin,
            UserChangeError::Unknown(cause) => Self::Unknown(cause),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("User with id: {0} does not exist")]
    NotFound(UserId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum EndSessionsError {
    #[error("User with id: {0} does not exist")]
    NotFound(UserId),
    /// An admin's own sessions are theirs to end (`DELETE /users/me/sessions`), not an admin
    /// operation's: a stolen admin token must not be able to log its owner out everywhere.
    #[error("admins cannot end their own sessions through the admin operations")]
    OwnAccount,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// What [`AdminService`] drives.
#[derive(Clone)]
pub struct AdminPorts {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
}

crate::opaque_debug!(AdminPorts);

/// The admin operations on other people's accounts (contract section 9).
#[derive(Clone)]
pub struct AdminService {
    ports: AdminPorts,
}

crate::opaque_debug!(AdminService);

impl AdminService {
    pub fn new(ports: AdminPorts) -> Self {
        Self { ports }
    }

    pub async fn list_users(&self, page: Page) -> Result<Vec<User>, Unknown> {
        Ok(self.ports.users.list_users(page).await?)
    }

    /// Changes a user's status. Disabling ends all of the user's sessions: their tokens stop
    /// working at once (they would anyway, as authentication checks the user, but a later
    /// re-enabling must not bring old sessions back).
    pub async fn update_user(
        &self,
        actor: &Principal,
        id: UserId,
        flags: UserFlags,
    ) -> Result<User, UpdateUserError> {
        let locks_out = flags.is_active == Some(false) || flags.is_admin == Some(false);
        if id == actor.user.id && locks_out {
            return Err(UpdateUserError::SelfLockout);
        }
        let before = self
            .ports
            .users
            .find_user(id)
            .await?
            .ok_or(UpdateUserError::NotFound(id))?;
        let user = self
            .ports
            .users
            .update_user_flags(id, flags, &flag_events(&before, flags))
            .await?
            .ok_or(UpdateUserError::NotFound(id))?;
        if flags.is_active == Some(false) {
            self.ports
                .sessions
                .revoke_sessions_of_user(id, None, Utc::now(), &[])
                .await?;
        }
        Ok(user)
    }

    /// Ends every session of user `id`: all their tokens stop working at once. Returns how many
    /// sessions were ended. An admin cannot end their own sessions this way.
    pub async fn end_sessions_of(
        &self,
        actor: &Principal,
        id: UserId,
    ) -> Result<u64, EndSessionsError> {
        if id == actor.user.id {
            return Err(EndSessionsError::OwnAccount);
        }
        if self.ports.users.find_user(id).await?.is_none() {
            return Err(EndSessionsError::NotFound(id));
        }
        let event = admin_event(id, SecurityEventKind::SessionRevoked);
        Ok(self
            .ports
            .sessions
            .revoke_sessions_of_user(id, None, event.at, &[event])
            .await?)
    }

    /// Makes an existing account an active admin (the command line's `create-admin` for an
    /// email that is taken).
    pub async fn promote(&self, id: UserId) -> Result<User, PromoteError> {
        let flags = UserFlags {
            is_active: Some(true),
            is_admin: Some(true),
        };
        let before = self
            .ports
            .users
            .find_user(id)
            .await?
            .ok_or(PromoteError::NotFound(id))?;
        self.ports
            .users
            .update_user_flags(id, flags, &flag_events(&before, flags))
            .await
            .map_err(|err| match err {
                // Promoting never takes an admin away.
                UserChangeError::LastAdmin => anyhow::anyhow!("{err}"),
                UserChangeError::Unknown(cause) => cause,
            })?
            .ok_or(PromoteError::NotFound(id))
    }
}

/// An event an admin causes on account `id`. It records no address, agent or session: those
/// are the admin's, and the account's owner reads the event (see [`EventContext`]).
fn admin_event(id: UserId, kind: SecurityEventKind) -> NewSecurityEvent {
    NewSecurityEvent::now(id, kind, EventContext::default())
}

/// The events of setting `flags` on `user`: one for each flag that changes.
fn flag_events(user: &User, flags: UserFlags) -> Vec<NewSecurityEvent> {
    let active = flags
        .is_active
        .filter(|active| *active != user.is_active)
        .map(|active| {
            if active {
                SecurityEventKind::AccountEnabled
            } else {
                SecurityEventKind::AccountDisabled
            }
        });
    let admin = flags
        .is_admin
        .filter(|admin| *admin != user.is_admin)
        .map(|admin| {
            if admin {
                SecurityEventKind::AdminGranted
            } else {
                SecurityEventKind::AdminRevoked
            }
        });
    [active, admin]
        .into_iter()
        .flatten()
        .map(|kind| admin_event(user.id, kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;

    use super::*;
    use crate::{accounts::EmailAddress, scope::Scopes, sessions::SessionId};
    use crate::{accounts::MockUserRepository, sessions::MockSessionRepository};

    fn user(id: i64, is_active: bool, is_admin: bool) -> User {
        User {
            id: UserId::new(id),
            email: EmailAddress::new(&format!("user{id}@example.com")).unwrap(),
            created_at: Utc::now(),
            is_active,
            is_admin,
            email_verified: false,
        }
    }

    fn admin() -> Principal {
        Principal {
            user: user(1, true, true),
            credential: crate::sessions::Credential::Session(SessionId::random()),
            scopes: Scopes::allowed_for(true),
            origin: crate::events::RequestOrigin::default(),
        }
    }

    fn service(users: MockUserRepository, sessions: MockSessionRepository) -> AdminService {
        AdminService::new(AdminPorts {
            users: Arc::new(users),
            sessions: Arc::new(sessions),
        })
    }

    /// The kinds of `events`, all of account `id` and with no context (an admin acted).
    fn admin_kinds(events: &[NewSecurityEvent], id: i64) -> Vec<SecurityEventKind> {
        assert!(
            events.iter().all(|event| event.user_id == UserId::new(id)
                && event.context == EventContext::default()),
            "{events:?}"
        );
        events.iter().map(|event| event.kind).collect()
    }

    fn disable() -> UserFlags {
        UserFlags {
            is_active: Some(false),
            is_admin: None,
        }
    }

    #[tokio::test]
    async fn disabling_a_user_ends_all_their_sessions() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user()
            .returning(|_| Ok(Some(user(2, true, false))));
        users
            .expect_update_user_flags()
            .withf(|id, flags, events| {
                *id == UserId::new(2)
                    && *flags == disable()
                    && admin_kinds(events, 2) == [SecurityEventKind::AccountDisabled]
            })
            .times(1)
            .returning(|_, _, _| Ok(Some(user(2, false, false))));
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_revoke_sessions_of_user()
            .withf(|id, except, _, events| {
                *id == UserId::new(2) && except.is_none() && events.is_empty()
            })
            .times(1)
            .returning(|_, _, _, _| Ok(3));
        let service = service(users, sessions);

        let updated = service
            .update_user(&admin(), UserId::new(2), disable())
            .await
            .unwrap();

        assert!(!updated.is_active);
    }

    #[tokio::test]
    async fn promoting_a_user_keeps_their_sessions() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user()
            .returning(|_| Ok(Some(user(2, true, false))));
        // Only what changes is recorded: the account was active already.
        users
            .expect_update_user_flags()
            .withf(|_, _, events| admin_kinds(events, 2) == [SecurityEventKind::AdminGranted])
            .returning(|_, _, _| Ok(Some(user(2, true, true))));
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke_sessions_of_user().never();
        let service = service(users, sessions);
        let flags = UserFlags {
            is_active: Some(true),
            is_admin: Some(true),
        };

        assert!(
            service
                .update_user(&admin(), UserId::new(2), flags)
                .await
                .unwrap()
                .is_admin
        );
    }

    #[tokio::test]
    async fn an_admin_cannot_disable_or_demote_themself() {
        let mut users = MockUserRepository::new();
        users.expect_update_user_flags().never();
        let service = service(users, MockSessionRepository::new());
        let demote = UserFlags {
            is_active: None,
            is_admin: Some(false),
        };

        for flags in [disable(), demote] {
            let err = service
                .update_user(&admin(), UserId::new(1), flags)
                .await
                .unwrap_err();
            assert!(matches!(err, UpdateUserError::SelfLockout), "{err:?}");
        }
    }

    #[tokio::test]
    async fn updating_a_missing_user_is_not_found() {
        let mut users = MockUserRepository::new();
        users.expect_find_user().returning(|_| Ok(None));
        users.expect_update_user_flags().never();
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke_sessions_of_user().never();
        let service = service(users, sessions);

        let err = service
            .update_user(&admin(), UserId::new(9), disable())
            .await
            .unwrap_err();

        assert!(
            matches!(err, UpdateUserError::NotFound(id) if id == UserId::new(9)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn ending_a_users_sessions_ends_every_one() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user()
            .with(eq(UserId::new(2)))
            .returning(|_| Ok(Some(user(2, true, false))));
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_revoke_sessions_of_user()
            .withf(|id, except, _, events| {
                *id == UserId::new(2)
                    && except.is_none()
                    && admin_kinds(events, 2) == [SecurityEventKind::SessionRevoked]
            })
            .times(1)
            .returning(|_, _, _, _| Ok(2));
        let service = service(users, sessions);

        assert_eq!(
            service
                .end_sessions_of(&admin(), UserId::new(2))
                .await
                .unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn ending_a_missing_users_sessions_is_not_found() {
        let mut users = MockUserRepository::new();
        users.expect_find_user().returning(|_| Ok(None));
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke_sessions_of_user().never();
        let service = service(users, sessions);

        let err = service
            .end_sessions_of(&admin(), UserId::new(9))
            .await
            .unwrap_err();

        assert!(
            matches!(err, EndSessionsError::NotFound(id) if id == UserId::new(9)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_admin_cannot_end_their_own_sessions_as_an_admin_operation() {
        let mut users = MockUserRepository::new();
        users.expect_find_user().never();
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke_sessions_of_user().never();
        let service = service(users, sessions);

        let err = service
            .end_sessions_of(&admin(), UserId::new(1))
            .await
            .unwrap_err();

        assert!(matches!(err, EndSessionsError::OwnAccount), "{err:?}");
    }

    #[tokio::test]
    async fn a_change_that_would_leave_no_active_admin_is_refused() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_user()
            .returning(|_| Ok(Some(user(2, true, true))));
        users
            .expect_update_user_flags()
            .times(1)
            .returning(|_, _, _| Err(UserChangeError::LastAdmin));
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke_sessions_of_user().never();
        let service = service(users, sessions);

        let err = service
            .update_user(&admin(), UserId::new(2), disable())
            .await
            .unwrap_err();

        assert!(matches!(err, UpdateUserError::LastAdmin), "{err:?}");
        assert_eq!(err.to_string(), "at least one active admin must remain");
    }
}
