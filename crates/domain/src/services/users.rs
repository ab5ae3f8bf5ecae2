//! Accounts: registering, looking up, and the owner's own changes (email, password, deletion).

use std::sync::Arc;

use chrono::Utc;

use crate::ports::{PasswordHasher, SaveUserError, SessionRepository, UserRepository};
use crate::services::Principal;
use crate::{EmailAddress, NewUser, Password, User, UserId};

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The email is taken. The message leaves it out: it is an answer to a client.
    #[error("a user with this email already exists")]
    Duplicate { email: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    #[error("User with id: {0} does not exist")]
    NotFound(UserId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeEmailError {
    #[error("a user with this email already exists")]
    Duplicate { email: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password given is wrong.
    #[error("Incorrect password")]
    IncorrectPassword,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum FindUserError {
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteAccountError {
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<SaveUserError> for RegisterError {
    fn from(err: SaveUserError) -> Self {
        match err {
            SaveUserError::Duplicate { email } => Self::Duplicate { email },
            SaveUserError::Unknown(err) => Self::Unknown(err),
        }
    }
}

impl From<SaveUserError> for ChangeEmailError {
    fn from(err: SaveUserError) -> Self {
        match err {
            SaveUserError::Duplicate { email } => Self::Duplicate { email },
            SaveUserError::Unknown(err) => Self::Unknown(err),
        }
    }
}

/// Account registration, lookup and self-service.
#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    hasher: Arc<dyn PasswordHasher>,
}

impl std::fmt::Debug for UserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

impl UserService {
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionRepository>,
        hasher: Arc<dyn PasswordHasher>,
    ) -> Self {
        Self {
            users,
            sessions,
            hasher,
        }
    }

    /// Creates an active, non-admin account.
    pub async fn register(
        &self,
        email: EmailAddress,
        password: Password,
    ) -> Result<User, RegisterError> {
        self.create(email, password, false).await
    }

    /// Creates an active admin account. Only the command line does this, never HTTP.
    pub async fn create_admin(
        &self,
        email: EmailAddress,
        password: Password,
    ) -> Result<User, RegisterError> {
        self.create(email, password, true).await
    }

    async fn create(
        &self,
        email: EmailAddress,
        password: Password,
        is_admin: bool,
    ) -> Result<User, RegisterError> {
        let password_hash = self.hasher.hash(&password).await?;
        let new_user = NewUser {
            email,
            password_hash,
            is_admin,
        };
        Ok(self.users.create(&new_user).await?)
    }

    pub async fn get(&self, id: UserId) -> Result<User, GetUserError> {
        self.users
            .find_by_id(id)
            .await?
            .ok_or(GetUserError::NotFound(id))
    }

    /// The account with this email, if any.
    pub async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<User>, FindUserError> {
        Ok(self
            .users
            .find_credentials_by_email(email)
            .await?
            .map(|credentials| credentials.user))
    }

    pub async fn change_email(
        &self,
        id: UserId,
        email: &EmailAddress,
    ) -> Result<User, ChangeEmailError> {
        self.users
            .update_email(id, email)
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {id} vanished while changing their email").into())
    }

    /// Changes the caller's password, given the current one, and ends every other session of
    /// the account: whoever else was logged in with the old password is logged out.
    pub async fn change_password(
        &self,
        caller: &Principal,
        current: &Password,
        new: &Password,
    ) -> Result<(), ChangePasswordError> {
        let id = caller.user.id;
        let credentials = self
            .users
            .find_credentials_by_id(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {id} vanished while changing their password"))?;
        if !self
            .hasher
            .verify(current, &credentials.password_hash)
            .await?
        {
            return Err(ChangePasswordError::IncorrectPassword);
        }
        let hash = self.hasher.hash(new).await?;
        self.users.update_password(id, &hash).await?;
        self.sessions
            .revoke_all_for_user(id, Some(caller.session_id), Utc::now())
            .await?;
        Ok(())
    }

    /// Deletes the account with its posts, votes and sessions.
    pub async fn delete(&self, id: UserId) -> Result<(), DeleteAccountError> {
        self.users.delete(id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use mockall::predicate::{always, eq};

    use super::*;
    use crate::ports::{MockPasswordHasher, MockSessionRepository, MockUserRepository};
    use crate::{PasswordHash, Scopes, SessionId, UserCredentials};

    fn user(id: i64, email: &str) -> User {
        User {
            id: UserId::new(id),
            email: EmailAddress::new(email).unwrap(),
            created_at: Utc::now(),
            is_active: true,
            is_admin: false,
        }
    }

    fn hasher_returning(hash: &'static str) -> MockPasswordHasher {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(move |_| Ok(PasswordHash::new(hash.into())));
        hasher
    }

    fn service(
        users: MockUserRepository,
        sessions: MockSessionRepository,
        hasher: MockPasswordHasher,
    ) -> UserService {
        UserService::new(Arc::new(users), Arc::new(sessions), Arc::new(hasher))
    }

    fn password(raw: &str) -> Password {
        Password::new(raw.into()).unwrap()
    }

    #[tokio::test]
    async fn registering_stores_the_hash_not_the_password() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|new_user| {
                new_user.password_hash.as_str() == "$hash"
                    && new_user.email.as_str() == "ann@example.com"
                    && !new_user.is_admin
            })
            .times(1)
            .returning(|_| Ok(user(7, "ann@example.com")));
        let service = service(
            users,
            MockSessionRepository::new(),
            hasher_returning("$hash"),
        );

        let registered = service
            .register(
                EmailAddress::new("ann@example.com").unwrap(),
                password("correct horse"),
            )
            .await
            .unwrap();

        assert_eq!(registered.id, UserId::new(7));
    }

    #[tokio::test]
    async fn admins_are_created_as_admins() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|new_user| new_user.is_admin)
            .times(1)
            .returning(|_| Ok(user(1, "root@example.com")));
        let service = service(
            users,
            MockSessionRepository::new(),
            hasher_returning("$hash"),
        );

        service
            .create_admin(
                EmailAddress::new("root@example.com").unwrap(),
                password("correct horse"),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn registering_a_taken_email_is_a_duplicate() {
        let mut users = MockUserRepository::new();
        users.expect_create().returning(|_| {
            Err(SaveUserError::Duplicate {
                email: "ann@example.com".into(),
            })
        });
        let service = service(
            users,
            MockSessionRepository::new(),
            hasher_returning("$hash"),
        );

        let err = service
            .register(
                EmailAddress::new("ANN@example.com").unwrap(),
                password("correct horse"),
            )
            .await
            .unwrap_err();

        assert!(matches!(err, RegisterError::Duplicate { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_failing_hasher_stores_nothing() {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Err(anyhow::anyhow!("out of memory")));
        let mut users = MockUserRepository::new();
        users.expect_create().never();
        let service = service(users, MockSessionRepository::new(), hasher);

        let err = service
            .register(
                EmailAddress::new("ann@example.com").unwrap(),
                password("correct horse"),
            )
            .await
            .unwrap_err();

        assert!(matches!(err, RegisterError::Unknown(_)), "{err:?}");
    }

    #[tokio::test]
    async fn getting_an_existing_user_returns_it() {
        let mut users = MockUserRepository::new();
        users
            .expect_find_by_id()
            .with(eq(UserId::new(3)))
            .returning(|_| Ok(Some(user(3, "bob@example.com"))));
        let service = service(
            users,
            MockSessionRepository::new(),
            MockPasswordHasher::new(),
        );

        let found = service.get(UserId::new(3)).await.unwrap();

        assert_eq!(found.email.as_str(), "bob@example.com");
    }

    #[tokio::test]
    async fn getting_a_missing_user_is_not_found() {
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().returning(|_| Ok(None));
        let service = service(
            users,
            MockSessionRepository::new(),
            MockPasswordHasher::new(),
        );

        let err = service.get(UserId::new(3)).await.unwrap_err();

        assert!(
            matches!(err, GetUserError::NotFound(id) if id == UserId::new(3)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn changing_to_a_taken_email_is_a_duplicate() {
        let mut users = MockUserRepository::new();
        users.expect_update_email().returning(|_, email| {
            Err(SaveUserError::Duplicate {
                email: email.to_string(),
            })
        });
        let service = service(
            users,
            MockSessionRepository::new(),
            MockPasswordHasher::new(),
        );

        let err = service
            .change_email(
                UserId::new(1),
                &EmailAddress::new("bob@example.com").unwrap(),
            )
            .await
            .unwrap_err();

        assert!(matches!(err, ChangeEmailError::Duplicate { .. }), "{err:?}");
    }

    fn caller() -> Principal {
        Principal {
            user: user(1, "ann@example.com"),
            session_id: SessionId::random(),
            scopes: Scopes::allowed_for(false),
        }
    }

    fn with_credentials(users: &mut MockUserRepository) {
        users.expect_find_credentials_by_id().returning(|id| {
            Ok(Some(UserCredentials {
                user: user(id.get(), "ann@example.com"),
                password_hash: PasswordHash::new("$old".into()),
            }))
        });
    }

    #[tokio::test]
    async fn changing_the_password_ends_every_other_session() {
        let caller = caller();
        let mut users = MockUserRepository::new();
        with_credentials(&mut users);
        users
            .expect_update_password()
            .withf(|id, hash| *id == UserId::new(1) && hash.as_str() == "$new")
            .times(1)
            .returning(|_, _| Ok(true));
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_revoke_all_for_user()
            .with(eq(UserId::new(1)), eq(Some(caller.session_id)), always())
            .times(1)
            .returning(|_, _, _| Ok(2));
        let mut hasher = hasher_returning("$new");
        hasher
            .expect_verify()
            .returning(|_, hash| Ok(hash.as_str() == "$old"));

        service(users, sessions, hasher)
            .change_password(&caller, &password("current pw"), &password("new password"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_wrong_current_password_changes_nothing() {
        let mut users = MockUserRepository::new();
        with_credentials(&mut users);
        users.expect_update_password().never();
        let mut sessions = MockSessionRepository::new();
        sessions.expect_revoke_all_for_user().never();
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_verify().returning(|_, _| Ok(false));
        hasher.expect_hash().never();

        let err = service(users, sessions, hasher)
            .change_password(&caller(), &password("wrong pw!"), &password("new password"))
            .await
            .unwrap_err();

        assert!(
            matches!(err, ChangePasswordError::IncorrectPassword),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn deleting_an_account_deletes_the_user() {
        let mut users = MockUserRepository::new();
        users
            .expect_delete()
            .with(eq(UserId::new(1)))
            .times(1)
            .returning(|_| Ok(true));
        let service = service(
            users,
            MockSessionRepository::new(),
            MockPasswordHasher::new(),
        );

        service.delete(UserId::new(1)).await.unwrap();
    }
}
