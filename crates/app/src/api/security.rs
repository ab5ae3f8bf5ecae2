//! The `OAuth2PasswordBearer` security scheme: OAuth2's password flow with `/login` as its token
//! URL, as FastAPI's `OAuth2PasswordBearer(tokenUrl="login")`. Swagger UI's Authorize button
//! logs in through it. Extracting [`OAuth2PasswordBearer`] is FastAPI's `get_current_user`, and
//! more: it also enforces the scopes the operation declares.
//!
//! An operation declares its scope once, in the attribute that documents it:
//! `#[oai(scope = "ApiScope::PROFILE")] auth: OAuth2PasswordBearer`. poem-openapi only writes
//! that into the OpenAPI document, so the checker reads it back from there: [`OperationScopes`]
//! is built from the generated document, and the checker looks up the operation being called by
//! its method and path template. What the document says an operation needs is therefore what
//! it enforces; they cannot drift. (The alternative, a typed extractor per scope, would still
//! need the attribute for the document: two declarations that a test would have to keep equal.)
//! The checker runs when the first parameter is extracted, so a token without the scope is a 403
//! before the body is looked at, as a missing token is a 401.

use std::collections::HashMap;
use std::sync::LazyLock;

use poem::http::Method;
use poem::{PathPattern, Request};
use poem_openapi::auth::Bearer;
use poem_openapi::registry::MetaOAuthScope;
use poem_openapi::{OAuthScopes, SecurityScheme};
use warden_domain::{
    personal_tokens::PERSONAL_TOKEN_PREFIX,
    scope::{Scope, Scopes},
    sessions::{AuthenticateError, Principal},
};

use super::error::ApiError;
use super::path_shape as template;
use crate::api::state::AppState;

/// The name of the scheme in the OpenAPI document.
pub const SCHEME: &str = "OAuth2PasswordBearer";
/// The name of the personal access tokens' scheme in the OpenAPI document.
pub const PAT_SCHEME: &str = "PersonalAccessToken";

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
// (A `///` comment here would become the scheme's public description.)
/// Log in with your email as the username and your password. Tokens are sent as
/// `Authorization: Bearer <token>`; each operation lists the scopes it needs.
#[derive(Debug, SecurityScheme)]
#[oai(
    rename = "OAuth2PasswordBearer",
    ty = "oauth2",
    flows(password(token_url = "/login", scopes = "ApiScope")),
    checker = "authenticate"
)]
pub struct OAuth2PasswordBearer(pub Principal);

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
            Self::Token(PersonalAccessToken(principal))
            | Self::Password(OAuth2PasswordBearer(principal)) => principal,
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

/// Both schemes' check: the token (a JWT, or a personal access token where the operation
/// accepts one), then the operation's scopes.
async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::from(anyhow::anyhow!("the app state is not installed")))?;
    let needed = OPERATION_SCOPES.needed_by(req)?;
    let mut principal = match state.auth.authenticate(&bearer.token).await {
        Ok(principal) => principal,
        Err(AuthenticateError::InvalidToken { reason }) => {
            tracing::info!(reason, "refused a bearer token");
            return Err(ApiError::invalid_token().into());
        }
        Err(AuthenticateError::Unknown(err)) => return Err(ApiError::from(err).into()),
    };
    if principal.session_id.is_none() && !needed.personal_tokens {
        return Err(ApiError::needs_password_login().into());
    }
    principal.origin = state.throttle.request_origin(req);
    match needed
        .scopes
        .iter()
        .find(|scope| !principal.has_scope(*scope))
    {
        Some(missing) => Err(ApiError::insufficient_scope(missing).into()),
        None => Ok(principal),
    }
}

/// The scopes of every operation, read from the document the code generates.
static OPERATION_SCOPES: LazyLock<OperationScopes> =
    LazyLock::new(|| OperationScopes::from_openapi(&super::openapi_json()));

/// What an operation that uses the schemes needs: its scopes, and whether a personal access
/// token may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Needs {
    scopes: Scopes,
    personal_tokens: bool,
}

/// What each operation that uses the scheme needs, keyed by method and path template.
#[derive(Debug, Default)]
pub struct OperationScopes(HashMap<(Method, String), Needs>);

impl OperationScopes {
    /// The table of `document` (an OpenAPI document): every operation whose `security` names
    /// the scheme, with the scopes listed there.
    ///
    /// # Panics
    ///
    /// If the document names a scope the domain does not know: the document is generated from
    /// [`ApiScope`], so that is a bug found at the first request of any test.
    pub fn from_openapi(document: &str) -> Self {
        let document: serde_json::Value =
            serde_json::from_str(document).expect("the generated OpenAPI document is JSON");
        let mut table = HashMap::new();
        let paths = document["paths"].as_object().into_iter().flatten();
        for (path, operations) in paths {
            let operations = operations.as_object().into_iter().flatten();
            for (method, operation) in operations {
                let requirements = operation["security"].as_array().into_iter().flatten();
                let personal_tokens = operation["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|requirement| requirement.get(PAT_SCHEME).is_some());
                for requirement in requirements {
                    let Some(names) = requirement[SCHEME].as_array() else {
                        continue;
                    };
                    let scopes = names
                        .iter()
                        .map(|name| {
                            let name = name.as_str().unwrap_or_default();
                            Scope::parse(name)
                                .unwrap_or_else(|| panic!("the document names scope {name:?}"))
                        })
                        .collect();
                    let method = Method::from_bytes(method.to_uppercase().as_bytes())
                        .expect("the document's methods are HTTP methods");
                    let needs = Needs {
                        scopes,
                        personal_tokens,
                    };
                    table.insert((method, template(path)), needs);
                }
            }
        }
        Self(table)
    }

    /// The scopes the operation `req` was routed to needs. An operation missing from the table
    /// is refused: it uses the scheme but its document does not say so, which is a bug.
    fn needed_by(&self, req: &Request) -> Result<Needs, ApiError> {
        let pattern = req
            .data::<PathPattern>()
            .map(|pattern| template(&pattern.0));
        pattern
            .and_then(|pattern| self.0.get(&(req.method().clone(), pattern)))
            .copied()
            .ok_or_else(|| {
                ApiError::from(anyhow::anyhow!(
                    "{} {} uses the security scheme but the document lists no scopes for it",
                    req.method(),
                    req.uri().path()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_the_scopes_each_operation_lists() {
        let table = OperationScopes::from_openapi(
            r#"{"paths": {
                "/posts/{id}": {
                    "get": {"security": [{"OAuth2PasswordBearer": ["posts:read"]}]},
                    "delete": {"security": [{"OAuth2PasswordBearer": ["posts:write", "profile"]}]}
                },
                "/logout": {"post": {"security": [{"OAuth2PasswordBearer": []}]}},
                "/users": {"post": {}}
            }}"#,
        );
        let scopes = |method: Method, path: &str| {
            table
                .0
                .get(&(method, template(path)))
                .map(|needs| needs.scopes)
        };
        assert_eq!(
            scopes(Method::GET, "/posts/:id"),
            Some(Scopes::parse("posts:read").unwrap())
        );
        assert_eq!(
            scopes(Method::DELETE, "/posts/:post_id"),
            Some(Scopes::parse("profile posts:write").unwrap())
        );
        assert_eq!(scopes(Method::POST, "/logout"), Some(Scopes::empty()));
        assert_eq!(scopes(Method::POST, "/users"), None);
    }

    #[test]
    fn every_scope_of_the_domain_is_declared() {
        let declared: Vec<_> = ApiScope::meta().into_iter().map(|meta| meta.name).collect();
        let domain: Vec<_> = Scope::ALL.into_iter().map(Scope::as_str).collect();
        assert_eq!(declared, domain);
    }
}
