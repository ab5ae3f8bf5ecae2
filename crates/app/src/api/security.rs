//! The `OAuth2PasswordBearer` security scheme: OAuth2's password flow with `/login` as its token
//! URL, as FastAPI's `OAuth2PasswordBearer(tokenUrl="login")`. Swagger UI's Authorize button
//! logs in through it. Extracting [`OAuth2PasswordBearer`] is FastAPI's `get_current_user`.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::{OAuthScopes, SecurityScheme};
use warden_domain::Scope;
use warden_domain::services::{AuthenticateError, Principal};

use super::error::ApiError;
use crate::AppState;

/// The scopes a token can carry (contract section 3), as the OpenAPI document declares them.
#[derive(Debug, OAuthScopes)]
pub enum WardenScope {
    /// Read and manage your own account.
    #[oai(rename = "profile")]
    Profile,
    /// Read posts and other users' public profiles.
    #[oai(rename = "posts:read")]
    PostsRead,
    /// Create, change and delete your posts, and vote.
    #[oai(rename = "posts:write")]
    PostsWrite,
    /// Administer users. Granted only to admin accounts.
    #[oai(rename = "admin")]
    Admin,
}

// The authenticated caller. Declare it as an operation's **first** parameter: parameters are
// extracted in order, so a request without a valid token is refused (401) before its body is
// looked at. (A `///` comment here would become the scheme's public description.)
/// Log in with your email as the username and your password. Tokens are sent as
/// `Authorization: Bearer <token>`; each operation lists the scopes it needs.
#[derive(Debug, SecurityScheme)]
#[oai(
    rename = "OAuth2PasswordBearer",
    ty = "oauth2",
    flows(password(token_url = "/login", scopes = "WardenScope")),
    checker = "authenticate"
)]
pub struct OAuth2PasswordBearer(pub Principal);

impl OAuth2PasswordBearer {
    /// Refuses the request unless the token carries `scope`. The `#[oai(scope = ...)]` on the
    /// parameter only documents the need; this enforces it.
    pub fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        if self.0.has_scope(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }
}

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(&anyhow::anyhow!("the app state is not installed")))?;
    match state.auth.authenticate(&bearer.token).await {
        Ok(principal) => Ok(principal),
        Err(AuthenticateError::InvalidToken { reason }) => {
            tracing::info!(reason, "refused a bearer token");
            Err(ApiError::invalid_token().into())
        }
        Err(AuthenticateError::Unknown(err)) => Err(ApiError::internal(&err).into()),
    }
}
