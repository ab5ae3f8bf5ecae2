//! Email (contract section 12): password reset, email verification and confirmed email change,
//! each through a single-use token that a mail carries, and the delivery of the outbox.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};

use crate::{
    accounts::{
        ChangeEmailError, EmailAddress, NewUser, Password, PasswordCheck, RegisterError,
        SaveUserError, User, UserRepository,
    },
    crypto::{PasswordHasher, SecretCodec},
    events::{EventContext, NewSecurityEvent, RequestOrigin, SecurityEventKind},
    mail::{
        EmailToken, EmailTokenLifetimes, EmailTokenPurpose, MailId, MailKind, MailRepository,
        MailRetry, MailSender, MailToken, NewEmailToken, OutgoingMail,
    },
    sessions::Principal,
};

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmTokenError {
    /// Unknown, spent, expired, for another purpose, or its account is gone or disabled: the
    /// answer does not tell which.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The address of an email change was taken by another account meanwhile.
    #[error("a user with this email already exists")]
    Duplicate { email: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ResendVerificationError {
    #[error("the email address is already verified")]
    AlreadyVerified,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ResetRequestError {
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// What the email flows need.
#[derive(Clone)]
pub struct EmailPorts {
    pub users: Arc<dyn UserRepository>,
    pub mail: Arc<dyn MailRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    /// Makes the tokens: 256 random bits, stored as their SHA-256.
    pub secrets: Arc<dyn SecretCodec>,
}

crate::opaque_debug!(EmailPorts);

/// The account flows that go through a mailbox. Exists only when mail is configured.
#[derive(Clone)]
pub struct EmailService {
    ports: EmailPorts,
    lifetimes: EmailTokenLifetimes,
    password: PasswordCheck,
}

crate::opaque_debug!(EmailService { lifetimes });

impl EmailService {
    pub fn new(ports: EmailPorts, lifetimes: EmailTokenLifetimes) -> Self {
        let password = PasswordCheck::new(ports.users.clone(), ports.hasher.clone());
        Self {
            ports,
            lifetimes,
            password,
        }
    }

    /// Registers an active, non-admin account and queues its verification mail, together.
    pub async fn register(
        &self,
        email: EmailAddress,
        password: Password,
    ) -> Result<User, RegisterError> {
        let password_hash = self.ports.hasher.hash(&password).await?;
        let (token, mail) = self.token(
            EmailTokenPurpose::EmailVerification,
            &email,
            MailKind::EmailVerification,
        );
        let new_user = NewUser {
            email,
            password_hash,
            is_admin: false,
            email_verified: false,
        };
        Ok(self
            .ports
            .mail
            .create_user_with_mail(&new_user, &token, &mail)
            .await?)
    }

    /// Queues a reset mail if `email` is an active account's; otherwise does nothing. The
    /// caller answers alike whatever this finds, without waiting for it: the request path must
    /// take the same time for every address, and only this knows which kind it is.
    pub async fn request_password_reset(
        &self,
        email: &EmailAddress,
    ) -> Result<(), ResetRequestError> {
        let Some(credentials) = self.ports.users.find_credentials_by_email(email).await? else {
            return Ok(());
        };
        let user = credentials.user;
        if user.is_active {
            self.mail_token(
                &user,
                EmailTokenPurpose::PasswordReset,
                MailKind::PasswordReset,
            )
            .await?;
        }
        Ok(())
    }

    /// Sets a new password with a reset token, ending every session of the account. Proves
    /// that the account's address receives mail, so it counts as verified.
    pub async fn reset_password(
        &self,
        token: &str,
        new: &Password,
        origin: &RequestOrigin,
    ) -> Result<(), ConfirmTokenError> {
        let (hash, token) = self
            .live_token(token, EmailTokenPurpose::PasswordReset)
            .await?;
        self.active_user(&token).await?;
        let password_hash = self.ports.hasher.hash(new).await?;
        let event = event(&token, SecurityEventKind::PasswordReset, origin);
        let now = Utc::now();
        if self
            .ports
            .mail
            .reset_password(&hash, token.user_id, &password_hash, now, &[event])
            .await?
        {
            Ok(())
        } else {
            // Spent by a concurrent request, or expired since.
            Err(ConfirmTokenError::InvalidToken)
        }
    }

    /// Marks the account's address verified with a verification token sent to it. A token
    /// sent to an address the account has left since is refused.
    pub async fn verify_email(
        &self,
        token: &str,
        origin: &RequestOrigin,
    ) -> Result<(), ConfirmTokenError> {
        let (hash, token) = self
            .live_token(token, EmailTokenPurpose::EmailVerification)
            .await?;
        self.active_user(&token).await?;
        let event = event(&token, SecurityEventKind::EmailVerified, origin);
        let verified = self
            .ports
            .mail
            .verify_email(&hash, token.user_id, &token.email, Utc::now(), &[event])
            .await?;
        verified
            .then_some(())
            .ok_or(ConfirmTokenError::InvalidToken)
    }

    /// Queues a new verification mail to the caller's address.
    pub async fn resend_verification(
        &self,
        caller: &Principal,
    ) -> Result<(), ResendVerificationError> {
        let user = &caller.user;
        if user.email_verified {
            return Err(ResendVerificationError::AlreadyVerified);
        }
        self.mail_token(
            user,
            EmailTokenPurpose::EmailVerification,
            MailKind::EmailVerification,
        )
        .await?;
        Ok(())
    }

    /// Asks to move the caller to `email`, given the current password: queues a confirmation
    /// mail to the new address and a notice to the old one. Nothing changes until the token
    /// comes back.
    pub async fn request_email_change(
        &self,
        caller: &Principal,
        current: &Password,
        email: &EmailAddress,
    ) -> Result<(), ChangeEmailError> {
        let user = &caller.user;
        if !self.password.matches(user.id, current).await? {
            return Err(ChangeEmailError::IncorrectPassword);
        }
        if let Some(other) = self.ports.users.find_credentials_by_email(email).await?
            && other.user.id != user.id
        {
            return Err(ChangeEmailError::Duplicate {
                email: email.as_str().to_owned(),
            });
        }
        let (token, mail) =
            self.token(EmailTokenPurpose::EmailChange, email, MailKind::EmailChange);
        let notice = OutgoingMail {
            kind: MailKind::EmailChangeNotice,
            to: user.email.clone(),
            token: None,
        };
        self.ports
            .mail
            .issue_email_token(user.id, &token, &[mail, notice])
            .await?;
        Ok(())
    }

    /// Moves the account to the address an email change token was sent to, verified.
    pub async fn confirm_email_change(
        &self,
        token: &str,
        origin: &RequestOrigin,
    ) -> Result<(), ConfirmTokenError> {
        let (hash, token) = self
            .live_token(token, EmailTokenPurpose::EmailChange)
            .await?;
        self.active_user(&token).await?;
        let event = event(&token, SecurityEventKind::EmailChanged, origin);
        match self
            .ports
            .mail
            .change_email_confirmed(&hash, token.user_id, &token.email, Utc::now(), &[event])
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ConfirmTokenError::InvalidToken),
            Err(SaveUserError::Duplicate { email }) => Err(ConfirmTokenError::Duplicate { email }),
            Err(SaveUserError::Unknown(err)) => Err(err.into()),
        }
    }

    /// Forgets tokens that expired; call it now and then.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        self.ports
            .mail
            .delete_expired_email_tokens(Utc::now())
            .await
    }

    /// Queues a new token for `purpose` to `user`'s address, in the mail of `kind` that carries
    /// it (see [`token`](Self::token)).
    async fn mail_token(
        &self,
        user: &User,
        purpose: EmailTokenPurpose,
        kind: MailKind,
    ) -> anyhow::Result<()> {
        let (token, mail) = self.token(purpose, &user.email, kind);
        self.ports
            .mail
            .issue_email_token(user.id, &token, &[mail])
            .await
    }

    /// A new token for `purpose` concerning `email`, and the mail of `kind` to `email` that
    /// carries it.
    fn token(
        &self,
        purpose: EmailTokenPurpose,
        email: &EmailAddress,
        kind: MailKind,
    ) -> (NewEmailToken, OutgoingMail) {
        let (secret, hash) = self.ports.secrets.generate();
        let lifetime = match purpose {
            EmailTokenPurpose::PasswordReset => self.lifetimes.password_reset,
            EmailTokenPurpose::EmailVerification | EmailTokenPurpose::EmailChange => {
                self.lifetimes.verification
            }
        };
        let now = Utc::now();
        let token = NewEmailToken {
            purpose,
            hash,
            email: email.clone(),
            created_at: now,
            expires_at: now + lifetime,
        };
        let mail = OutgoingMail {
            kind,
            to: email.clone(),
            token: Some(MailToken::new(secret)),
        };
        (token, mail)
    }

    /// The stored token `presented` is, with its hash, if it is live for `purpose`.
    async fn live_token(
        &self,
        presented: &str,
        purpose: EmailTokenPurpose,
    ) -> Result<(crate::crypto::SecretHash, EmailToken), ConfirmTokenError> {
        let hash = self.ports.secrets.hash(presented);
        let token = self
            .ports
            .mail
            .find_email_token(&hash)
            .await?
            .filter(|token| token.is_live_for(purpose, Utc::now()))
            .ok_or(ConfirmTokenError::InvalidToken)?;
        Ok((hash, token))
    }

    /// The token's account, if it still exists and is active.
    async fn active_user(&self, token: &EmailToken) -> Result<User, ConfirmTokenError> {
        match self.ports.users.find_user(token.user_id).await? {
            Some(user) if user.is_active => Ok(user),
            _ => Err(ConfirmTokenError::InvalidToken),
        }
    }
}

/// An event of the token's account, from this request, in no session.
fn event(token: &EmailToken, kind: SecurityEventKind, origin: &RequestOrigin) -> NewSecurityEvent {
    NewSecurityEvent::now(token.user_id, kind, EventContext::of(origin, None))
}

/// What became of a mail [`MailDelivery::deliver_next`] took.
#[derive(Debug)]
pub struct Delivery {
    pub id: MailId,
    pub kind: MailKind,
    /// How many times it has been tried, this time included.
    pub attempts: u32,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug)]
pub enum DeliveryOutcome {
    /// Handed to the mail server, and removed from the outbox.
    Sent,
    /// Failed; due again after `delay`.
    Retry {
        delay: TimeDelta,
        error: anyhow::Error,
    },
    /// Failed for the last time: removed from the outbox unsent.
    GaveUp { error: anyhow::Error },
}

/// What [`MailDelivery`] drives.
#[derive(Clone)]
pub struct DeliveryPorts {
    pub outbox: Arc<dyn MailRepository>,
    pub sender: Arc<dyn MailSender>,
}

crate::opaque_debug!(DeliveryPorts);

/// Sends what the outbox holds, retrying with exponential backoff.
#[derive(Clone)]
pub struct MailDelivery {
    ports: DeliveryPorts,
    retry: MailRetry,
}

crate::opaque_debug!(MailDelivery { retry });

impl MailDelivery {
    /// How long a worker holds a mail it took before another may take it: far longer than a
    /// send can take (the sender's timeouts end it sooner), so that a mail is sent twice only
    /// when the instance sending it died mid-send.
    pub const LEASE: TimeDelta = TimeDelta::minutes(5);

    pub fn new(ports: DeliveryPorts, retry: MailRetry) -> Self {
        Self { ports, retry }
    }

    /// Takes the next mail due, if any, and tries to send it: removes it once sent, makes it
    /// due again after the backoff when that fails, or removes it unsent after the last try.
    ///
    /// # Errors
    ///
    /// The outbox could not be read or updated. A mail taken but not updated is due again
    /// when its lease ends.
    pub async fn deliver_next(&self) -> anyhow::Result<Option<Delivery>> {
        let now = Utc::now();
        let Some(queued) = self.ports.outbox.claim_mail(now, now + Self::LEASE).await? else {
            return Ok(None);
        };
        let outcome = match self.ports.sender.send(&queued.mail).await {
            Ok(()) => {
                self.ports.outbox.remove_mail(queued.id).await?;
                DeliveryOutcome::Sent
            }
            Err(error) => match self.retry.delay_after(queued.attempts) {
                Some(delay) => {
                    self.ports
                        .outbox
                        .retry_mail(queued.id, Utc::now() + delay)
                        .await?;
                    DeliveryOutcome::Retry { delay, error }
                }
                None => {
                    self.ports.outbox.remove_mail(queued.id).await?;
                    DeliveryOutcome::GaveUp { error }
                }
            },
        };
        Ok(Some(Delivery {
            id: queued.id,
            kind: queued.mail.kind,
            attempts: queued.attempts,
            outcome,
        }))
    }
}

#[cfg(test)]
mod tests;
