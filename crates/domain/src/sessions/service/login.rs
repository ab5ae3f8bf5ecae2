//! Logging in: the password grant, with a second factor when the account has one (contract
//! sections 2 and 10), and the `mfa-otp` grant that finishes a login in two steps.
//!
//! A second factor is asked for only after the right password: a wrong password is the usual
//! `invalid_grant` whatever else the request carries, so the answer never tells whether the
//! password was right unless it was.

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use super::{AuthService, TokenGrant};
use crate::{
    accounts::{EmailAddress, Password, User},
    events::{EventContext, NewSecurityEvent, RequestOrigin, SecurityEventKind},
    mfa::{MfaChallenge, TotpFactor},
    scope::{Scopes, UnknownScopeError},
    sessions::{AuthMethods, NewRefreshToken, NewSession, SessionId, SessionOrigin},
};

/// A password grant (RFC 6749 section 4.3) as the token endpoint received it.
#[derive(Debug)]
pub struct PasswordLogin {
    /// The `username` field, which is the account's email. It is parsed here, not by the caller,
    /// so that a malformed address is refused exactly like an unknown one.
    pub username: String,
    pub password: Password,
    /// The `scope` field, if the client sent one.
    pub scope: Option<String>,
    /// The `otp` field: a TOTP code or a recovery code, for an account with a second factor
    /// (one step). Ignored for an account without one.
    pub otp: Option<SecretString>,
    /// Where the login comes from: its client, user agent and address. Its authentication
    /// methods are the service's to set.
    pub origin: SessionOrigin,
}

/// The second step of a login with a second factor
/// (`grant_type=urn:warden:params:oauth:grant-type:mfa-otp`).
#[derive(Debug)]
pub struct MfaLogin {
    /// The `mfa_token` the first step answered.
    pub mfa_token: SecretString,
    /// A TOTP code or a recovery code.
    pub otp: SecretString,
    /// Where this step comes from (its client is the first step's).
    pub origin: SessionOrigin,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account. Deliberately one variant: the answer
    /// must not tell an attacker which it was.
    #[error("incorrect username or password")]
    InvalidCredentials,
    /// The password was right, but the account has a second factor and the request carried
    /// none: finish with the `mfa-otp` grant and this token (single use, 5 minutes).
    #[error("a second factor is required: send a code with the mfa_token")]
    MfaRequired { mfa_token: SecretString },
    /// The code is wrong, spent or not current. `username` is the account's email.
    #[error("the second factor is invalid")]
    InvalidSecondFactor { username: String },
    /// The `mfa_token` is unknown, expired, spent, or has had its five codes checked.
    #[error("the mfa_token is invalid, expired or spent")]
    InvalidMfaToken,
    /// The password was right, but the account's address is not verified and
    /// `REQUIRE_VERIFIED_EMAIL` is set.
    #[error("email address not verified")]
    EmailNotVerified,
    #[error(transparent)]
    InvalidScope(#[from] UnknownScopeError),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl AuthService {
    /// The password grant: checks the credentials, and the second factor if the account has
    /// one, then opens a session and issues an access token with the scopes the account may
    /// hold (all of them, or those requested).
    pub async fn login(&self, login: PasswordLogin) -> Result<TokenGrant, LoginError> {
        // An unknown scope name is a malformed request, refused before any expensive work.
        let requested = login.scope.as_deref().map(Scopes::parse).transpose()?;
        let request = RequestOrigin {
            ip_address: login.origin.ip_address,
            user_agent: login.origin.user_agent.clone(),
        };
        let user = self
            .check_credentials(&login.username, &login.password, &request)
            .await?;
        if self.require_verified_email && !user.email_verified {
            return Err(LoginError::EmailNotVerified);
        }

        let allowed = Scopes::allowed_for(user.is_admin);
        let scopes = requested.map_or(allowed, |requested| requested.intersection(allowed));

        let methods = match self.ports.mfa.find_totp(user.id).await? {
            Some(factor) if factor.is_confirmed() => {
                let Some(otp) = &login.otp else {
                    let mfa_token = self.challenge(&user, scopes, &login.origin).await?;
                    return Err(LoginError::MfaRequired { mfa_token });
                };
                self.check_second_factor(&user, &factor, otp, &request)
                    .await?;
                AuthMethods::PasswordAndOtp
            }
            _ => AuthMethods::Password,
        };
        let origin = SessionOrigin {
            auth_methods: methods,
            ..login.origin
        };
        Ok(self.open_session(&user, scopes, origin).await?)
    }

    /// The second step of a login with a second factor: the `mfa_token` of the first step and a
    /// code. Each code tried counts against the token, which checks at most five.
    pub async fn login_with_second_factor(
        &self,
        login: MfaLogin,
    ) -> Result<TokenGrant, LoginError> {
        let now = Utc::now();
        let token_hash = self.ports.secrets.hash(login.mfa_token.expose_secret());
        let challenge = self
            .ports
            .mfa
            .find_mfa_challenge(&token_hash)
            .await?
            .filter(|challenge| challenge.is_live_at(now))
            .ok_or(LoginError::InvalidMfaToken)?;
        let user = match self.ports.users.find_user(challenge.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(LoginError::InvalidMfaToken),
        };
        let factor = match self.ports.mfa.find_totp(user.id).await? {
            Some(factor) if factor.is_confirmed() => factor,
            // The second factor was removed meanwhile: the password login works without one.
            _ => return Err(LoginError::InvalidMfaToken),
        };
        let request = RequestOrigin {
            ip_address: login.origin.ip_address,
            user_agent: login.origin.user_agent.clone(),
        };
        // Counted before it is checked, in one conditional update: racing codes get no more
        // than the token's five checks between them.
        if !self.ports.mfa.try_mfa_challenge(&token_hash, now).await? {
            return Err(LoginError::InvalidMfaToken);
        }
        self.check_second_factor(&user, &factor, &login.otp, &request)
            .await?;
        // Of two racing second steps with right codes, one gets the session.
        if !self.ports.mfa.spend_mfa_challenge(&token_hash, now).await? {
            return Err(LoginError::InvalidMfaToken);
        }
        let scopes = challenge
            .scopes
            .intersection(Scopes::allowed_for(user.is_admin));
        let origin = SessionOrigin {
            client_id: challenge.client_id,
            auth_methods: AuthMethods::PasswordAndOtp,
            ..login.origin
        };
        Ok(self.open_session(&user, scopes, origin).await?)
    }

    /// The active account a live `mfa_token` would log in, or `None`: whose budget a code sent
    /// with it spends, so that the caller can take a unit of that budget before
    /// [`AuthService::login_with_second_factor`] checks the code.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn second_step_account(
        &self,
        mfa_token: &SecretString,
    ) -> anyhow::Result<Option<User>> {
        let token_hash = self.ports.secrets.hash(mfa_token.expose_secret());
        let Some(challenge) = self
            .ports
            .mfa
            .find_mfa_challenge(&token_hash)
            .await?
            .filter(|challenge| challenge.is_live_at(Utc::now()))
        else {
            return Ok(None);
        };
        Ok(self
            .ports
            .users
            .find_user(challenge.user_id)
            .await?
            .filter(|user| user.is_active))
    }

    /// Stores the challenge of a login whose password was right, and returns its `mfa_token`.
    async fn challenge(
        &self,
        user: &User,
        scopes: Scopes,
        origin: &SessionOrigin,
    ) -> anyhow::Result<SecretString> {
        let now = Utc::now();
        let (mfa_token, token_hash) = self.ports.secrets.generate();
        self.ports
            .mfa
            .create_mfa_challenge(&MfaChallenge {
                token_hash,
                user_id: user.id,
                scopes,
                client_id: origin.client_id.clone(),
                created_at: now,
                expires_at: now + MfaChallenge::LIFETIME,
                failures: 0,
                spent_at: None,
            })
            .await?;
        Ok(mfa_token.into())
    }

    /// Checks (and spends) a second factor; a wrong one is recorded as a refused login.
    async fn check_second_factor(
        &self,
        user: &User,
        factor: &TotpFactor,
        otp: &SecretString,
        request: &RequestOrigin,
    ) -> Result<(), LoginError> {
        let context = EventContext::of(request, None);
        if self
            .second_factor
            .verify(factor, otp.expose_secret(), context.clone())
            .await?
        {
            return Ok(());
        }
        let event = NewSecurityEvent::now(user.id, SecurityEventKind::LoginFailed, context);
        self.ports.events.record_events(&[event]).await?;
        Err(LoginError::InvalidSecondFactor {
            username: user.email.as_str().to_owned(),
        })
    }

    /// Opens a session for `user` with `scopes`, recording the login, and issues its tokens.
    async fn open_session(
        &self,
        user: &User,
        scopes: Scopes,
        origin: SessionOrigin,
    ) -> anyhow::Result<TokenGrant> {
        let now = Utc::now();
        let (refresh_token, refresh_hash) = self.ports.secrets.generate();
        let session_id = SessionId::random();
        let request = RequestOrigin {
            ip_address: origin.ip_address,
            user_agent: origin.user_agent.clone(),
        };
        let event = NewSecurityEvent {
            user_id: user.id,
            kind: SecurityEventKind::Login,
            at: now,
            context: EventContext::of(&request, Some(session_id)),
        };
        let session = self
            .ports
            .sessions
            .create_session(
                &NewSession {
                    id: session_id,
                    user_id: user.id,
                    created_at: now,
                    expires_at: now + self.lifetimes.session,
                    scopes,
                    origin,
                },
                &NewRefreshToken {
                    hash: refresh_hash,
                    expires_at: now + self.lifetimes.refresh_token,
                },
                self.max_sessions,
                &[event],
            )
            .await?;
        self.grant(user, &session, scopes, refresh_token).await
    }

    /// The account these credentials belong to, if they are right and the account is active.
    /// Every refusal costs one password verification, so that its timing tells nothing; the
    /// refusal of an existing account is recorded as its `login_failed` event.
    async fn check_credentials(
        &self,
        username: &str,
        password: &Password,
        request: &RequestOrigin,
    ) -> Result<User, LoginError> {
        let credentials = match EmailAddress::new(username) {
            Ok(email) => self.ports.users.find_credentials_by_email(&email).await?,
            Err(_) => None,
        };
        let Some(credentials) = credentials else {
            self.ports.hasher.verify_dummy(password).await?;
            return Err(LoginError::InvalidCredentials);
        };
        let matches = self
            .ports
            .hasher
            .verify_password(password, &credentials.password_hash)
            .await?;
        if matches && credentials.user.is_active {
            Ok(credentials.user)
        } else {
            self.login_failed(&credentials.user, request);
            Err(LoginError::InvalidCredentials)
        }
    }

    /// Records a refused login of an existing account, without waiting for the write (see
    /// [`SecurityEventRepository::record_events_detached`](crate::events::SecurityEventRepository::record_events_detached)).
    fn login_failed(&self, user: &User, request: &RequestOrigin) {
        let event = NewSecurityEvent::now(
            user.id,
            SecurityEventKind::LoginFailed,
            EventContext::of(request, None),
        );
        self.ports.events.record_events_detached(vec![event]);
    }
}
