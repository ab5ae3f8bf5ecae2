//! Authenticating with a personal access token (contract section 13): one indexed lookup of
//! the token and its user, as a JWT's session check costs.

use chrono::Utc;

use super::{AuthService, AuthenticateError};
use crate::{
    accounts::User,
    events::{EventContext, NewSecurityEvent, RequestOrigin, SecurityEventKind},
    personal_tokens::PersonalToken,
    scope::Scopes,
    sessions::{Credential, Principal},
};

impl AuthService {
    /// The caller behind a personal access token: it must be known, unrevoked and unexpired,
    /// and its user existing and active. Its scopes are cut to what the account may hold now.
    pub(super) async fn authenticate_personal_token(
        &self,
        token: &str,
        origin: RequestOrigin,
    ) -> Result<Principal, AuthenticateError> {
        let (found, user) = self.live_personal_token(token).await?.ok_or_else(|| {
            AuthenticateError::InvalidToken {
                reason: "unknown, revoked or expired personal access token, or its user is \
                         gone or disabled"
                    .into(),
            }
        })?;
        let now = Utc::now();
        // At most one write a minute per token, not one per request.
        if found.use_is_stale_at(now) {
            self.ports
                .personal_tokens
                .record_personal_token_use(found.id, now)
                .await?;
        }
        Ok(Principal {
            scopes: found
                .scopes
                .intersection(Scopes::allowed_for(user.is_admin)),
            user,
            credential: Credential::PersonalToken(found.id),
            origin,
        })
    }

    /// The live personal access token `token` is, with its active user.
    pub(super) async fn live_personal_token(
        &self,
        token: &str,
    ) -> anyhow::Result<Option<(PersonalToken, User)>> {
        let hash = self.ports.secrets.hash(token);
        let now = Utc::now();
        Ok(self
            .ports
            .personal_tokens
            .find_personal_token(&hash)
            .await?
            .filter(|(found, user)| found.is_active_at(now) && user.is_active))
    }

    /// Introspection (RFC 7662) of a personal access token: the token and what it may do now,
    /// if it would be accepted right now; `None` otherwise.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn introspect_personal_token(
        &self,
        token: &str,
    ) -> anyhow::Result<Option<(PersonalToken, User, Scopes)>> {
        Ok(self.live_personal_token(token).await?.map(|(found, user)| {
            let scopes = found
                .scopes
                .intersection(Scopes::allowed_for(user.is_admin));
            (found, user, scopes)
        }))
    }

    /// Revocation (RFC 7009) of a personal access token: revoked at once, and recorded.
    /// Returns whether `token` was a live one.
    pub(super) async fn revoke_personal_token_by_value(
        &self,
        token: &str,
        origin: &RequestOrigin,
    ) -> anyhow::Result<bool> {
        let Some((found, user)) = self.live_personal_token(token).await? else {
            return Ok(false);
        };
        let event = NewSecurityEvent::now(
            user.id,
            SecurityEventKind::PersonalTokenRevoked,
            EventContext::of(origin, None),
        );
        self.ports
            .personal_tokens
            .revoke_personal_token(user.id, found.id, event.at, &[event])
            .await?;
        Ok(true)
    }
}
