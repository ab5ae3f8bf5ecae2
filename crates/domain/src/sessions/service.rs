//! Logging in with a password, and finding out who a bearer token belongs to (the
//! `get_current_user` of the FastAPI design).

use std::sync::Arc;

use chrono::{TimeDelta, Utc};

use crate::{
    accounts::{User, UserRepository},
    crypto::{
        AccessClaims, AccessGrant, PasswordHasher, SecretCodec, TokenIssuer, TokenVerifier,
        TotpCodec,
    },
    error::Unknown,
    events::{
        EventContext, NewSecurityEvent, RequestOrigin, SecurityEventKind, SecurityEventRepository,
    },
    mfa::{MfaRepository, SecondFactor},
    personal_tokens::{PERSONAL_TOKEN_PREFIX, PersonalTokenRepository},
    scope::Scopes,
    sessions::{
        LoginPrincipal, NewRefreshToken, Principal, Rotation, Session, SessionId, SessionRepository,
    },
};

/// What a successful login or refresh hands back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: std::time::Duration,
    /// The refresh token to use next; the one presented (if any) is spent.
    pub refresh_token: String,
    pub scopes: Scopes,
    pub session_id: SessionId,
}

/// A refresh grant (RFC 6749 section 6) as the token endpoint received it.
#[derive(Debug)]
pub struct RefreshLogin {
    pub refresh_token: String,
    /// The `scope` field, if the client sent one: at most the scopes of the original login.
    pub scope: Option<String>,
    /// Where the request comes from, for the event a replayed token records.
    pub origin: RequestOrigin,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired or revoked refresh token, or its user is disabled or gone.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    /// The token had been spent already, so it was stolen or the client raced itself; the
    /// session is now ended. To the client this is [`RefreshError::InvalidGrant`] too.
    #[error("the refresh token is invalid, expired or revoked")]
    Replayed(SessionId),
    /// An unknown scope, or one the original login was not granted.
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Refuses `requested` scopes beyond what a login was `granted` (RFC 6749 section 6).
fn exceeding(requested: Scopes, granted: Scopes) -> Result<(), RefreshError> {
    if requested.intersection(granted) == requested {
        Ok(())
    } else {
        Err(RefreshError::InvalidScope(format!(
            "{requested} exceeds the scopes of the original login ({granted})"
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// The token is not valid, or no longer is: its session ended or its user is gone or
    /// disabled. The reason is for logs only.
    #[error("invalid token: {reason}")]
    InvalidToken { reason: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl AuthenticateError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidToken {
            reason: reason.into(),
        }
    }
}

/// Login and token authentication.
#[derive(Clone)]
pub struct AuthService {
    ports: AuthPorts,
    second_factor: SecondFactor,
    lifetimes: Lifetimes,
    /// `REQUIRE_VERIFIED_EMAIL`: a password login of an account whose address is not verified
    /// is refused.
    require_verified_email: bool,
    /// `MAX_SESSIONS_PER_ACCOUNT`: a login past it ends the least recently used session.
    max_sessions: u32,
}

/// How many active sessions an account holds by default (`MAX_SESSIONS_PER_ACCOUNT`).
pub const DEFAULT_MAX_SESSIONS: u32 = 100;

/// How long logins last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// A session ends this long after its login, however it is refreshed.
    pub session: TimeDelta,
    /// A refresh token must be used within this long.
    pub refresh_token: TimeDelta,
}

crate::opaque_debug!(AuthService { lifetimes });

/// The outbound ports the auth service drives.
#[derive(Clone)]
pub struct AuthPorts {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub secrets: Arc<dyn SecretCodec>,
    pub events: Arc<dyn SecurityEventRepository>,
    pub mfa: Arc<dyn MfaRepository>,
    pub totp: Arc<dyn TotpCodec>,
    pub personal_tokens: Arc<dyn PersonalTokenRepository>,
}

crate::opaque_debug!(AuthPorts);

impl AuthService {
    pub fn new(ports: AuthPorts, lifetimes: Lifetimes) -> Self {
        Self {
            second_factor: SecondFactor::new(ports.mfa.clone(), ports.totp.clone()),
            ports,
            lifetimes,
            require_verified_email: false,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }

    /// Holds each account to `max` active sessions (at least 1): a login past it ends the
    /// least recently used one.
    #[must_use]
    pub fn holding_sessions(mut self, max: u32) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// Refuses password logins of accounts whose address is not verified, when `require` is
    /// set (contract section 12).
    #[must_use]
    pub fn requiring_verified_email(mut self, require: bool) -> Self {
        self.require_verified_email = require;
        self
    }

    /// The refresh grant: spends the presented refresh token and hands out a new access token
    /// and a new refresh token for the same session. A refresh token presented after it was
    /// spent is taken for a stolen one, and the whole session is ended.
    pub async fn refresh(&self, refresh: RefreshLogin) -> Result<TokenGrant, RefreshError> {
        let requested = match refresh.scope.as_deref().map(Scopes::parse).transpose() {
            Ok(requested) => requested,
            Err(err) => return Err(RefreshError::InvalidScope(err.to_string())),
        };
        let now = Utc::now();
        let presented = self.ports.secrets.hash(&refresh.refresh_token);
        // A request for more than the login's scopes is refused before the token is spent, so
        // that the client's token still works afterwards. (A session's scopes never change.)
        if let Some(requested) = requested
            && let Some(session) = self
                .ports
                .sessions
                .find_session_by_refresh_token(&presented)
                .await?
        {
            exceeding(requested, session.scopes)?;
        }
        let (refresh_token, next_hash) = self.ports.secrets.generate();
        let next = NewRefreshToken {
            hash: next_hash,
            expires_at: now + self.lifetimes.refresh_token,
        };
        let session = match self
            .ports
            .sessions
            .rotate_refresh_token(&presented, &next, now)
            .await?
        {
            Rotation::Rotated(session) => session,
            Rotation::Replayed(session_id) => {
                // RFC 9700 section 4.14.2: the server cannot tell the thief from the client, so
                // it ends the session for both.
                let events: Vec<_> = self
                    .ports
                    .sessions
                    .find_session(session_id)
                    .await?
                    .map(|session| NewSecurityEvent {
                        user_id: session.user_id,
                        kind: SecurityEventKind::RefreshReuseDetected,
                        at: now,
                        context: EventContext::of(&refresh.origin, Some(session_id)),
                    })
                    .into_iter()
                    .collect();
                self.ports
                    .sessions
                    .revoke_session(session_id, now, &events)
                    .await?;
                return Err(RefreshError::Replayed(session_id));
            }
            Rotation::Invalid => return Err(RefreshError::InvalidGrant),
        };
        if !session.is_active_at(now) {
            return Err(RefreshError::InvalidGrant);
        }
        let user = match self.ports.users.find_user(session.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(RefreshError::InvalidGrant),
        };
        // RFC 6749 section 6: never more than the original grant.
        let granted = session
            .scopes
            .intersection(Scopes::allowed_for(user.is_admin));
        let scopes = match requested {
            None => granted,
            Some(requested) => {
                exceeding(requested, session.scopes)?;
                requested.intersection(granted)
            }
        };
        Ok(self.grant(&user, &session, scopes, refresh_token).await?)
    }

    /// Ends the caller's session: its access and refresh tokens stop working at once.
    pub async fn logout(&self, principal: &LoginPrincipal) -> Result<(), Unknown> {
        let event = principal.event(SecurityEventKind::Logout);
        self.ports
            .sessions
            .revoke_session(principal.session_id(), event.at, &[event])
            .await?;
        Ok(())
    }

    async fn grant(
        &self,
        user: &User,
        session: &Session,
        scopes: Scopes,
        refresh_token: String,
    ) -> anyhow::Result<TokenGrant> {
        let issued = self
            .ports
            .issuer
            .issue(&AccessGrant {
                user_id: user.id,
                session_id: session.id,
                scopes,
                client_id: session.origin.client_id.clone(),
                auth_methods: session.origin.auth_methods,
            })
            .await?;
        Ok(TokenGrant {
            access_token: issued.token,
            expires_in: issued.expires_in,
            refresh_token,
            scopes,
            session_id: session.id,
        })
    }

    /// The caller behind a bearer token, whose request comes from `origin`: the token must be
    /// valid, its session active, and its user existing and active. A personal access token
    /// (`wdn_pat_...`) must be live and its user existing and active.
    pub async fn authenticate(
        &self,
        token: &str,
        origin: RequestOrigin,
    ) -> Result<Principal, AuthenticateError> {
        if token.starts_with(PERSONAL_TOKEN_PREFIX) {
            return self.authenticate_personal_token(token, origin).await;
        }
        self.authenticate_claims(token, origin)
            .await
            .map(|(principal, _)| principal.into())
    }

    async fn authenticate_claims(
        &self,
        token: &str,
        origin: RequestOrigin,
    ) -> Result<(LoginPrincipal, AccessClaims), AuthenticateError> {
        let claims = self
            .ports
            .verifier
            .verify_access_token(token)
            .await
            .map_err(|err| AuthenticateError::invalid(err.reason))?;

        // One read of the session and its user, on every request: no cache, so an ended session
        // or a disabled account fails on the very next request on every instance.
        let (session, user) = self
            .ports
            .sessions
            .find_session_with_user(claims.session_id)
            .await?
            .ok_or_else(|| AuthenticateError::invalid("unknown session, or its user is gone"))?;
        if session.user_id != claims.user_id {
            return Err(AuthenticateError::invalid("session of another user"));
        }
        let now = Utc::now();
        if !session.is_active_at(now) {
            return Err(AuthenticateError::invalid("session ended"));
        }
        if !user.is_active {
            return Err(AuthenticateError::invalid("user is disabled"));
        }
        // At most one write a minute per session, not one per request.
        if session.use_is_stale_at(now) {
            self.ports
                .sessions
                .record_session_use(session.id, now)
                .await?;
        }
        // An admin who has since been demoted keeps their token but not its `admin` scope.
        let scopes = claims
            .scopes
            .intersection(Scopes::allowed_for(user.is_admin));
        Ok((
            LoginPrincipal::new(user, session.id, scopes, origin),
            claims,
        ))
    }
}

mod login;
mod personal;
mod sessions;

pub use login::{LoginError, MfaLogin, PasswordLogin};
pub use sessions::EndSessionError;

#[cfg(test)]
mod tests;
