//! Accounts: registering, looking up, and the owner's own changes (email, password, deletion).

use std::sync::Arc;

use chrono::Utc;

use crate::{
    accounts::{
        EmailAddress, NewUser, Password, SaveUserError, User, UserChangeError, UserId,
        UserRepository,
    },
    crypto::PasswordHasher,
    error::Unknown,
    events::SecurityEventKind,
    sessions::{LoginPrincipal, Principal, SessionRepository},
};

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
    /// The current password given is wrong: an email change needs it, so that a stolen access
    /// token cannot move the account to another mailbox.
    #[error("Incorrect password")]
    IncorrectPassword,
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
pub enum DeleteAccountError {
    /// The current password given is wrong.
    #[error("Incorrect password")]
    IncorrectPassword,
    /// The account is the only active admin: deleting it would leave nobody to administer the
    /// service.
    #[error("at least one active admin must remain")]
    LastAdmin,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<UserChangeError> for DeleteAccountError {
    fn from(err: UserChangeError) -> Self {
        match err {
            UserChangeError::LastAdmin => Self::LastAdmin,
            UserChangeError::Unknown(cause) => Self::Unknown(cause),
        }
    }
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

/// Checks an account's current password: the proof that a stolen access token does not carry,
/// which the account's security operations ask for (contract section 5, "Account safety").
#[derive(Clone)]
pub struct PasswordCheck {
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
}

crate::opaque_debug!(PasswordCheck);

impl PasswordCheck {
    pub fn new(users: Arc<dyn UserRepository>, hasher: Arc<dyn PasswordHasher>) -> Self {
        Self { users, hasher }
    }

    /// Whether `password` is the current password of account `id`.
    ///
    /// # Errors
    ///
    /// The account is gone, or the storage or the hasher failed.
    pub async fn matches(&self, id: UserId, password: &Password) -> anyhow::Result<bool> {
        let credentials = self
            .users
            .find_credentials_by_id(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {id} vanished while checking their password"))?;
        self.hasher
            .verify_password(password, &credentials.password_hash)
            .await
    }
}

/// What [`UserService`] drives.
#[derive(Clone)]
pub struct UserPorts {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
}

crate::opaque_debug!(UserPorts);

/// Account registration, lookup and self-service.
#[derive(Clone)]
pub struct UserService {
    ports: UserPorts,
    password: PasswordCheck,
}

crate::opaque_debug!(UserService);

impl UserService {
    pub fn new(ports: UserPorts) -> Self {
        Self {
            password: PasswordCheck::new(ports.users.clone(), ports.hasher.clone()),
            ports,
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
        let password_hash = self.ports.hasher.hash(&password).await?;
        let new_user = NewUser {
            email,
            password_hash,
            is_admin,
            // An operator creating an admin vouches for the address; registration does not.
            email_verified: is_admin,
        };
        Ok(self.ports.users.create_user(&new_user).await?)
    }

    pub async fn get(&self, id: UserId) -> Result<User, GetUserError> {
        self.ports
            .users
            .find_user(id)
            .await?
            .ok_or(GetUserError::NotFound(id))
    }

    /// The account with this email, if any.
    pub async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<User>, Unknown> {
        Ok(self
            .ports
            .users
            .find_credentials_by_email(email)
            .await?
            .map(|credentials| credentials.user))
    }

    /// Changes the caller's email at once (mail off), given the current password, recording an
    /// `email_changed` event. Tokens mailed to the old address are spent with it.
    pub async fn change_email(
        &self,
        caller: &Principal,
        current: &Password,
        email: &EmailAddress,
    ) -> Result<User, ChangeEmailError> {
        let id = caller.user.id;
        if !self.password.matches(id, current).await? {
            return Err(ChangeEmailError::IncorrectPassword);
        }
        let event = caller.event(SecurityEventKind::EmailChanged);
        self.ports
            .users
            .update_email(id, email, &[event])
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {id} vanished while changing their email").into())
    }

    /// Changes the caller's password, given the current one, and ends every other session of
    /// the account: whoever else was logged in with the old password is logged out. Pending
    /// mailed tokens (email change, reset) are spent with the change.
    pub async fn change_password(
        &self,
        caller: &LoginPrincipal,
        current: &Password,
        new: &Password,
    ) -> Result<(), ChangePasswordError> {
        let id = caller.user.id;
        let own_session = caller.session_id();
        if !self.password.matches(id, current).await? {
            return Err(ChangePasswordError::IncorrectPassword);
        }
        let hash = self.ports.hasher.hash(new).await?;
        let event = caller.event(SecurityEventKind::PasswordChanged);
        self.ports
            .users
            .update_password(id, &hash, &[event])
            .await?;
        self.ports
            .sessions
            .revoke_sessions_of_user(id, Some(own_session), Utc::now(), &[])
            .await?;
        Ok(())
    }

    /// Deletes the caller's account with its posts, votes and sessions, given the current
    /// password, unless it is the only active admin (decided by the store, as the account is
    /// deleted).
    pub async fn delete(
        &self,
        caller: &Principal,
        current: &Password,
    ) -> Result<(), DeleteAccountError> {
        let id = caller.user.id;
        if !self.password.matches(id, current).await? {
            return Err(DeleteAccountError::IncorrectPassword);
        }
        self.ports.users.delete_user(id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
