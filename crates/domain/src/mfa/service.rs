//! Two-factor authentication (contract section 10): enrolling a TOTP authenticator (with the
//! password), confirming it with a code, recovery codes, disabling, and an admin's reset; and
//! [`SecondFactor`], the check of a code that logins share.

use std::sync::Arc;

use chrono::Utc;

use crate::{
    accounts::{Password, PasswordCheck, UserId, UserRepository},
    crypto::{PasswordHasher, TotpCodec},
    error::Unknown,
    events::{EventContext, NewSecurityEvent, SecurityEventKind},
    mfa::{MfaRepository, TotpEnrolment, TotpFactor},
    sessions::Principal,
};

/// The longest code looked at: anything longer is no TOTP or recovery code.
const MAX_CODE_CHARS: usize = 64;

/// Checks second factors: a current TOTP code, each time step of which is accepted once, or an
/// unused recovery code, spent by the check and recorded as `recovery_code_used`.
#[derive(Clone)]
pub struct SecondFactor {
    mfa: Arc<dyn MfaRepository>,
    codec: Arc<dyn TotpCodec>,
}

crate::opaque_debug!(SecondFactor);

impl SecondFactor {
    pub fn new(mfa: Arc<dyn MfaRepository>, codec: Arc<dyn TotpCodec>) -> Self {
        Self { mfa, codec }
    }

    /// Whether `code` is a second factor of `factor`'s user: six digits are a TOTP code,
    /// anything else a recovery code. Either is spent by this call; `context` is where the
    /// request came from, for the event of a recovery code.
    ///
    /// # Errors
    ///
    /// The storage failed, or the stored secret cannot be opened.
    pub async fn verify(
        &self,
        factor: &TotpFactor,
        code: &str,
        context: EventContext,
    ) -> anyhow::Result<bool> {
        let code = code.trim();
        if code.is_empty() || code.chars().count() > MAX_CODE_CHARS {
            return Ok(false);
        }
        if code.len() == 6 && code.bytes().all(|byte| byte.is_ascii_digit()) {
            let secret = self.codec.open(&factor.secret)?;
            let Some(step) = self.codec.matching_step(&secret, code, Utc::now()) else {
                return Ok(false);
            };
            return self.mfa.use_totp_step(factor.user_id, step).await;
        }
        let event =
            NewSecurityEvent::now(factor.user_id, SecurityEventKind::RecoveryCodeUsed, context);
        let hash = self.codec.hash_recovery_code(code);
        self.mfa
            .use_recovery_code(factor.user_id, &hash, event.at, &[event])
            .await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartTotpError {
    #[error("Incorrect password")]
    IncorrectPassword,
    #[error("two-factor authentication is already enabled")]
    AlreadyEnabled,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmTotpError {
    #[error("no two-factor authentication is pending confirmation")]
    NothingPending,
    #[error("invalid code")]
    InvalidCode,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Why disabling the second factor or renewing its recovery codes was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeMfaError {
    #[error("Incorrect password")]
    IncorrectPassword,
    #[error("invalid code")]
    InvalidCode,
    #[error("two-factor authentication is not enabled")]
    NotEnabled,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum ResetMfaError {
    #[error("User with id: {0} does not exist")]
    NotFound(UserId),
    /// An admin's own second factor is removed with their password and a code
    /// (`POST /users/me/mfa/disable`), never by an admin operation: a stolen admin token must
    /// not be able to strip its owner's second factor.
    #[error(
        "admins cannot reset their own second factor; disable it with your password and a code"
    )]
    OwnAccount,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The ports the two-factor service drives.
#[derive(Clone)]
pub struct MfaPorts {
    pub users: Arc<dyn UserRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub mfa: Arc<dyn MfaRepository>,
    pub codec: Arc<dyn TotpCodec>,
}

crate::opaque_debug!(MfaPorts);

/// Managing one's second factor, and an admin's reset of another's.
#[derive(Clone)]
pub struct MfaService {
    ports: MfaPorts,
    second_factor: SecondFactor,
    password: PasswordCheck,
}

crate::opaque_debug!(MfaService);

impl MfaService {
    pub fn new(ports: MfaPorts) -> Self {
        let second_factor = SecondFactor::new(ports.mfa.clone(), ports.codec.clone());
        let password = PasswordCheck::new(ports.users.clone(), ports.hasher.clone());
        Self {
            ports,
            second_factor,
            password,
        }
    }

    /// Whether the user's logins need a second factor.
    pub async fn is_enabled(&self, user: UserId) -> Result<bool, Unknown> {
        Ok(self
            .ports
            .mfa
            .find_totp(user)
            .await?
            .is_some_and(|factor| factor.is_confirmed()))
    }

    /// Starts enrolling an authenticator: a new secret, pending until a code of it is
    /// confirmed. Starting again replaces a pending secret.
    pub async fn start_totp(
        &self,
        caller: &Principal,
        password: &Password,
    ) -> Result<TotpEnrolment, StartTotpError> {
        if !self.password.matches(caller.user.id, password).await? {
            return Err(StartTotpError::IncorrectPassword);
        }
        let secret = self.ports.codec.generate_secret();
        let sealed = self.ports.codec.seal(&secret)?;
        if !self
            .ports
            .mfa
            .save_pending_totp(caller.user.id, &sealed, Utc::now())
            .await?
        {
            return Err(StartTotpError::AlreadyEnabled);
        }
        Ok(self
            .ports
            .codec
            .enrolment(&secret, caller.user.email.as_str())?)
    }

    /// Confirms the pending authenticator with a current code: from now on logins need a
    /// second factor. Returns the recovery codes, shown only here.
    pub async fn confirm_totp(
        &self,
        caller: &Principal,
        code: &str,
    ) -> Result<Vec<String>, ConfirmTotpError> {
        let factor = match self.ports.mfa.find_totp(caller.user.id).await? {
            Some(factor) if !factor.is_confirmed() => factor,
            _ => return Err(ConfirmTotpError::NothingPending),
        };
        let secret = self.ports.codec.open(&factor.secret)?;
        let Some(step) = self
            .ports
            .codec
            .matching_step(&secret, code.trim(), Utc::now())
        else {
            return Err(ConfirmTotpError::InvalidCode);
        };
        let recovery = self.ports.codec.generate_recovery_codes();
        let event = caller.event(SecurityEventKind::MfaEnabled);
        if self
            .ports
            .mfa
            .confirm_totp(caller.user.id, step, &recovery.hashes, event.at, &[event])
            .await?
        {
            Ok(recovery.codes)
        } else {
            // Confirmed (or removed) by a racing request meanwhile.
            Err(ConfirmTotpError::NothingPending)
        }
    }

    /// Removes the caller's second factor and recovery codes, given the password and a
    /// current code or a recovery code.
    pub async fn disable_totp(
        &self,
        caller: &Principal,
        password: &Password,
        code: &str,
    ) -> Result<(), ChangeMfaError> {
        self.check_both(caller, password, code).await?;
        let event = caller.event(SecurityEventKind::MfaDisabled);
        self.ports.mfa.remove_totp(caller.user.id, &[event]).await?;
        Ok(())
    }

    /// A new set of recovery codes, given the password and a current code or a recovery code:
    /// the old set stops working.
    pub async fn renew_recovery_codes(
        &self,
        caller: &Principal,
        password: &Password,
        code: &str,
    ) -> Result<Vec<String>, ChangeMfaError> {
        self.check_both(caller, password, code).await?;
        let recovery = self.ports.codec.generate_recovery_codes();
        if self
            .ports
            .mfa
            .replace_recovery_codes(caller.user.id, &recovery.hashes)
            .await?
        {
            Ok(recovery.codes)
        } else {
            Err(ChangeMfaError::NotEnabled)
        }
    }

    /// Deletes the challenges of two-step logins that have expired. Returns how many.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        self.ports
            .mfa
            .delete_expired_mfa_challenges(Utc::now())
            .await
    }

    /// An admin removes user `id`'s second factor and recovery codes (a lost phone). Not their
    /// own: that takes the password and a code.
    pub async fn reset(&self, admin: &Principal, id: UserId) -> Result<(), ResetMfaError> {
        if id == admin.user.id {
            return Err(ResetMfaError::OwnAccount);
        }
        if self.ports.users.find_user(id).await?.is_none() {
            return Err(ResetMfaError::NotFound(id));
        }
        // Like every admin action, recorded without the admin's request (see `EventContext`).
        let event =
            NewSecurityEvent::now(id, SecurityEventKind::MfaDisabled, EventContext::default());
        self.ports.mfa.remove_totp(id, &[event]).await?;
        Ok(())
    }

    /// The password first, then the second factor (which a right code spends).
    async fn check_both(
        &self,
        caller: &Principal,
        password: &Password,
        code: &str,
    ) -> Result<(), ChangeMfaError> {
        if !self.password.matches(caller.user.id, password).await? {
            return Err(ChangeMfaError::IncorrectPassword);
        }
        let factor = match self.ports.mfa.find_totp(caller.user.id).await? {
            Some(factor) if factor.is_confirmed() => factor,
            _ => return Err(ChangeMfaError::NotEnabled),
        };
        let context = EventContext::of(&caller.origin, caller.session_id());
        if self.second_factor.verify(&factor, code, context).await? {
            Ok(())
        } else {
            Err(ChangeMfaError::InvalidCode)
        }
    }
}

#[cfg(test)]
mod tests;
