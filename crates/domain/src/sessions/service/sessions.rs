//! The caller's sessions ("your devices", contract section 9), and the OAuth2 endpoints that
//! look at or end a token's session from outside (introspection and revocation, section 13).

use chrono::Utc;

use super::{AuthService, AuthenticateError, LoginPrincipal, Principal};
use crate::{
    crypto::AccessClaims,
    error::Unknown,
    events::{EventContext, NewSecurityEvent, RequestOrigin, SecurityEventKind},
    personal_tokens::PERSONAL_TOKEN_PREFIX,
    sessions::{Session, SessionId, SessionPage},
};

#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    /// Unknown, ended, expired or another user's: the answer does not tell which.
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl AuthService {
    /// One page of the caller's active sessions, newest first.
    pub async fn sessions(
        &self,
        principal: &Principal,
        page: SessionPage,
    ) -> Result<Vec<Session>, Unknown> {
        Ok(self
            .ports
            .sessions
            .list_active_sessions(principal.user.id, Utc::now(), page)
            .await?)
    }

    /// Ends one of the caller's sessions (the caller's own included): its tokens stop working
    /// at once.
    pub async fn end_session(
        &self,
        principal: &Principal,
        id: SessionId,
    ) -> Result<(), EndSessionError> {
        let event = principal.event_about(SecurityEventKind::SessionRevoked, Some(id));
        let ended = self
            .ports
            .sessions
            .revoke_session_of_user(principal.user.id, id, event.at, &[event])
            .await?;
        if ended {
            Ok(())
        } else {
            Err(EndSessionError::NotFound)
        }
    }

    /// Ends every session of the caller's account but the caller's own. Returns how many.
    pub async fn end_other_sessions(&self, principal: &LoginPrincipal) -> Result<u64, Unknown> {
        let event = principal.event_about(SecurityEventKind::SessionRevoked, None);
        Ok(self
            .ports
            .sessions
            .revoke_sessions_of_user(
                principal.user.id,
                Some(principal.session_id()),
                event.at,
                &[event],
            )
            .await?)
    }

    /// Introspection (RFC 7662): the bearer and the claims of `token` if it would be accepted
    /// right now, by the same checks as [`AuthService::authenticate`]; `None` otherwise. The
    /// bearer is not the one asking, so where it calls from is unknown: its origin is empty.
    pub async fn introspect(
        &self,
        token: &str,
    ) -> Result<Option<(LoginPrincipal, AccessClaims)>, Unknown> {
        match self
            .authenticate_claims(token, RequestOrigin::default())
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(AuthenticateError::InvalidToken { .. }) => Ok(None),
            Err(AuthenticateError::Unknown(err)) => Err(err.into()),
        }
    }

    /// Revocation (RFC 7009): ends the session of an access token or of a refresh token
    /// (spent or not), so that every token of that login stops working at once. A token that is
    /// neither, or has expired, changes nothing, and that is no error.
    /// The end is recorded as a `session_revoked` event of the token's account.
    pub async fn revoke_token(&self, token: &str, origin: &RequestOrigin) -> Result<(), Unknown> {
        if token.starts_with(PERSONAL_TOKEN_PREFIX) {
            self.revoke_personal_token_by_value(token, origin).await?;
            return Ok(());
        }
        let now = Utc::now();
        let event = |user_id, session_id| NewSecurityEvent {
            user_id,
            kind: SecurityEventKind::SessionRevoked,
            at: now,
            context: EventContext::of(origin, Some(session_id)),
        };
        if let Ok(claims) = self.ports.verifier.verify_access_token(token).await {
            let ended = event(claims.user_id, claims.session_id);
            self.ports
                .sessions
                .revoke_session(claims.session_id, now, &[ended])
                .await?;
            return Ok(());
        }
        let presented = self.ports.secrets.hash(token);
        if let Some(session) = self
            .ports
            .sessions
            .find_session_by_refresh_token(&presented)
            .await?
        {
            let ended = event(session.user_id, session.id);
            self.ports
                .sessions
                .revoke_session(session.id, now, &[ended])
                .await?;
        }
        Ok(())
    }
}
