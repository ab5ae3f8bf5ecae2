//! Access tokens as the domain sees them: what goes into one and what comes out of a valid one.
//! The wire format (a signed JWT) belongs to the adapter behind [`crate::crypto::TokenIssuer`].

use std::time::Duration;

use crate::{
    accounts::UserId,
    scope::Scopes,
    sessions::{AuthMethods, ClientId, SessionId},
};

/// What an access token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub scopes: Scopes,
    /// The client of the login (RFC 9068's `client_id`), kept by every refresh.
    pub client_id: ClientId,
    /// How the login was authenticated (RFC 8176's `amr`), kept by every refresh.
    pub auth_methods: AuthMethods,
}

/// A freshly signed access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: Duration,
}

/// What a token that passed every check (signature, algorithm, type, issuer, audience, time)
/// says about its bearer. Whether its session and user are still active is for the service to
/// check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub scopes: Scopes,
    /// The token's own details, for introspection (RFC 7662).
    pub details: TokenDetails,
}

/// An access token's own claims beyond whom it is for: for introspection (RFC 7662).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenDetails {
    /// `iat` and `exp`, in seconds since the epoch.
    pub issued_at: i64,
    pub expires_at: i64,
    /// `jti`.
    pub token_id: String,
    /// `client_id` (`warden` for tokens of a release that did not issue it).
    pub client_id: ClientId,
}

/// Why a token was refused. The reason is for logs only: clients always get the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access token: {reason}")]
pub struct InvalidTokenError {
    pub reason: String,
}

impl InvalidTokenError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}
