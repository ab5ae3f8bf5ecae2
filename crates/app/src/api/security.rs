//! The `OAuth2PasswordBearer` security scheme: OAuth2's password flow with `/login` as its token
//! URL, as FastAPI's `OAuth2PasswordBearer(tokenUrl="login")`. Swagger UI's Authorize button
//! logs in through it. Extracting [`OAuth2PasswordBearer`] is FastAPI's `get_current_user`, and
//! more: it also enforces the scopes the operation declares.
//!
//! An operation declares its scope once, in the attribute that documents it:
//! `#[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer`. poem-openapi only records
//! that in the operations' metadata, which the OpenAPI document is written from, so the checker
//! reads it back from there: the [`RouteTable`] is built from that metadata, and the checker
//! looks up the operation being called by its method and path template. What the document says
//! an operation needs is therefore what it enforces; they cannot drift. (The alternative, a
//! typed extractor per scope, would still need the attribute for the document: two declarations
//! that a test would have to keep equal.)
//! The checker runs when the first parameter is extracted, so a token without the scope is a 403
//! before the body is looked at, as a missing token is a 401.

use poem::{PathPattern, Request};
use poem_openapi::auth::Bearer;
use poem_openapi::registry::MetaOAuthScope;
use poem_openapi::{OAuthScopes, SecurityScheme};
use warden_domain::{
    personal_tokens::PERSONAL_TOKEN_PREFIX,
    scope::Scope,
    sessions::{AuthenticateError, LoginPrincipal, Principal},
};

use super::error::ApiError;
use super::routes::{Needs, RouteTable};
use crate::api::state::AppState;

/// A scope as the OpenAPI document declares it. The list of scopes is the domain's
/// [`Scope::ALL`]; this only gives it the shape poem-openapi's attributes take.
#[derive(Debug, Clone, Copy)]
pub struct ApiScope(Scope);

impl ApiScope {
    pub const PROFILE: Self = Self(Scope::Profile);
    pub const POSTS_READ: Self = Self(Scope::PostsRead);
    pub const POSTS_WRITE: Self = Self(Scope::PostsWrite);
    pub const ADMIN: Self = Self(Scope::Admin);
    pub const TOKENS_INTROSPECT: Self = Self(Scope::TokensIntrospect);
}

impl OAuthScopes for ApiScope {
    fn meta() -> Vec<MetaOAuthScope> {
        Scope::ALL
            .into_iter()
            .map(|scope| MetaOAuthScope {
                name: scope.as_str(),
                description: Some(scope.description()),
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        self.0.as_str()
    }
}

// The authenticated caller, with the scopes of the operation checked. Declare it as an
// operation's **first** parameter: parameters are extracted in order, so a request without a
// valid token (401) or without the scope (403) is refused before its body is looked at.
// (A `///` comment here would become the scheme's public description.) The route table finds
// the two schemes by name, `routes::SCHEME` and `routes::PAT_SCHEME`; its tests check that
// those are the names given here.
/// Log in with your email as the username and your password. Tokens are sent as
/// `Authorization: Bearer <token>`; each operation lists the scopes it needs.
#[derive(Debug, SecurityScheme)]
#[oai(
    rename = "OAuth2PasswordBearer",
    ty = "oauth2",
    flows(password(token_url = "/login", scopes = "ApiScope")),
    checker = "authenticate_login"
)]
pub struct OAuth2PasswordBearer(pub LoginPrincipal);

// A personal access token (contract section 13). Operations that accept one declare `Caller`,
// which is either scheme; the account's security operations declare `OAuth2PasswordBearer`
// alone, and answer a personal access token with 403.
/// A personal access token (`wdn_pat_...`, made with `POST /users/me/tokens`), sent as
/// `Authorization: Bearer wdn_pat_...`. Accepted by the operations its scopes allow, except
/// those on the account's security (password, email, second factors, sessions, tokens).
#[derive(Debug, SecurityScheme)]
#[oai(
    rename = "PersonalAccessToken",
    ty = "bearer",
    bearer_format = "wdn_pat_",
    checker = "authenticate_personal"
)]
pub struct PersonalAccessToken(pub Principal);

/// The caller of an operation that accepts a password login's token or a personal access
/// token: the document lists both schemes, with the operation's scopes.
#[derive(Debug, SecurityScheme)]
pub enum Caller {
    // Tried first: it turns away anything but a personal access token without any work, so
    // that the error of a failed JWT is the password scheme's (poem-openapi answers the last
    // variant's error).
    Token(PersonalAccessToken),
    Password(OAuth2PasswordBearer),
}

impl Caller {
    pub fn principal(&self) -> &Principal {
        match self {
            Self::Token(PersonalAccessToken(principal)) => principal,
            Self::Password(OAuth2PasswordBearer(login)) => login,
        }
    }
}

async fn authenticate_personal(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    if bearer.token.starts_with(PERSONAL_TOKEN_PREFIX) {
        authenticate(req, bearer).await
    } else {
        Err(ApiError::invalid_token().into())
    }
}

/// The password scheme's check: [`authenticate`], and the caller must be a password login.
/// [`authenticate`] refuses a personal access token where the operation does not accept one;
/// where it does (`Caller`), such a token passes as a [`PersonalAccessToken`], tried before
/// this, and comes here only if that failed, when the same checks fail here too.
async fn authenticate_login(req: &Request, bearer: Bearer) -> poem::Result<LoginPrincipal> {
    authenticate(req, bearer)
        .await?
        .into_login()
        .ok_or_else(|| ApiError::needs_password_login().into())
}

/// Both schemes' check: the token (a JWT, or a personal access token where the operation
/// accepts one), then the operation's scopes.
async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::from(anyhow::anyhow!("the app state is not installed")))?;
    let needed = needed_by(req)?;
    let origin = state.proxies.origin(req).into_request();
    let principal = match state.auth.authenticate(&bearer.token, origin).await {
        Ok(principal) => principal,
        Err(AuthenticateError::InvalidToken { reason }) => {
            tracing::info!(reason, "refused a bearer token");
            return Err(ApiError::invalid_token().into());
        }
        Err(AuthenticateError::Unknown(err)) => return Err(ApiError::from(err).into()),
    };
    if principal.session_id().is_none() && !needed.personal_tokens {
        return Err(ApiError::needs_password_login().into());
    }
    match needed
        .scopes
        .iter()
        .find(|scope| !principal.has_scope(*scope))
    {
        Some(missing) => Err(ApiError::insufficient_scope(missing).into()),
        None => Ok(principal),
    }
}

/// What the operation `req` was routed to needs. An operation missing from the table is
/// refused: it uses the schemes but its metadata does not say so, which is a bug.
fn needed_by(req: &Request) -> Result<Needs, ApiError> {
    req.data::<PathPattern>()
        .and_then(|pattern| RouteTable::app().needs(req.method(), &pattern.0))
        .ok_or_else(|| {
            ApiError::from(anyhow::anyhow!(
                "{} {} uses the security scheme but its operation lists no scopes",
                req.method(),
                req.uri().path()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_of_the_domain_is_declared() {
        let declared: Vec<_> = ApiScope::meta().into_iter().map(|meta| meta.name).collect();
        let domain: Vec<_> = Scope::ALL.into_iter().map(Scope::as_str).collect();
        assert_eq!(declared, domain);
    }
}
