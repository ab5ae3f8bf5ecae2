//! Registering accounts and looking them up.

use std::sync::Arc;

use crate::ports::{CreateUserError, PasswordHasher, UserRepository};
use crate::{EmailAddress, NewUser, Password, User, UserId};

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("a user with email {email} already exists")]
    Duplicate { email: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    #[error("user with id: {0} does not exist")]
    NotFound(UserId),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Account registration and lookup.
#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
}

impl std::fmt::Debug for UserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

impl UserService {
    pub fn new(users: Arc<dyn UserRepository>, hasher: Arc<dyn PasswordHasher>) -> Self {
        Self { users, hasher }
    }

    /// Creates an active, non-admin account.
    pub async fn register(
        &self,
        email: EmailAddress,
        password: Password,
    ) -> Result<User, RegisterError> {
        let password_hash = self.hasher.hash(&password).await?;
        let new_user = NewUser {
            email,
            password_hash,
        };
        self.users.create(&new_user).await.map_err(|err| match err {
            CreateUserError::Duplicate { email } => RegisterError::Duplicate { email },
            CreateUserError::Unknown(err) => RegisterError::Unknown(err),
        })
    }

    pub async fn get(&self, id: UserId) -> Result<User, GetUserError> {
        self.users
            .find_by_id(id)
            .await?
            .ok_or(GetUserError::NotFound(id))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use mockall::predicate::eq;

    use super::*;
    use crate::PasswordHash;
    use crate::ports::{MockPasswordHasher, MockUserRepository};

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

    #[tokio::test]
    async fn registering_stores_the_hash_not_the_password() {
        let mut users = MockUserRepository::new();
        users
            .expect_create()
            .withf(|new_user| {
                new_user.password_hash.as_str() == "$hash"
                    && new_user.email.as_str() == "ann@example.com"
            })
            .times(1)
            .returning(|_| Ok(user(7, "ann@example.com")));
        let service = UserService::new(Arc::new(users), Arc::new(hasher_returning("$hash")));

        let registered = service
            .register(
                EmailAddress::new("ann@example.com").unwrap(),
                Password::new("correct horse".into()).unwrap(),
            )
            .await
            .unwrap();

        assert_eq!(registered.id, UserId::new(7));
    }

    #[tokio::test]
    async fn registering_a_taken_email_is_a_duplicate() {
        let mut users = MockUserRepository::new();
        users.expect_create().returning(|_| {
            Err(CreateUserError::Duplicate {
                email: "ann@example.com".into(),
            })
        });
        let service = UserService::new(Arc::new(users), Arc::new(hasher_returning("$hash")));

        let err = service
            .register(
                EmailAddress::new("ANN@example.com").unwrap(),
                Password::new("correct horse".into()).unwrap(),
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
        let service = UserService::new(Arc::new(users), Arc::new(hasher));

        let err = service
            .register(
                EmailAddress::new("ann@example.com").unwrap(),
                Password::new("correct horse".into()).unwrap(),
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
        let service = UserService::new(Arc::new(users), Arc::new(MockPasswordHasher::new()));

        let found = service.get(UserId::new(3)).await.unwrap();

        assert_eq!(found.email.as_str(), "bob@example.com");
    }

    #[tokio::test]
    async fn getting_a_missing_user_is_not_found() {
        let mut users = MockUserRepository::new();
        users.expect_find_by_id().returning(|_| Ok(None));
        let service = UserService::new(Arc::new(users), Arc::new(MockPasswordHasher::new()));

        let err = service.get(UserId::new(3)).await.unwrap_err();

        assert!(
            matches!(err, GetUserError::NotFound(id) if id == UserId::new(3)),
            "{err:?}"
        );
    }
}
