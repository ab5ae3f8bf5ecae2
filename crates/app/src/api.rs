//! The HTTP API: the operations, grouped by tag, and the OpenAPI service that serves them.

pub mod account;
pub mod admin;
pub mod auth;
pub mod body;
pub mod error;
pub mod events;
pub mod health;
pub mod jwks;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod origin;
pub mod posts;
pub mod routes;
pub mod security;
pub mod sessions;
pub mod state;
pub mod tokens;
pub mod users;

use poem_openapi::{LicenseObject, OpenApiService, Tags};
use warden_domain::posts::Page;

use self::error::ApiError;

#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Logging in.
    Auth,
    /// Accounts.
    Users,
    /// Posts and votes.
    Posts,
    /// User administration, for admins.
    Admin,
    /// Probes for operators.
    Operations,
}

pub type Apis = (
    auth::AuthApi,
    jwks::JwksApi,
    oauth::OAuthApi,
    // Grouped: std implements `Default` for tuples of at most twelve.
    (users::UsersApi, account::AccountApi),
    mail::MailApi,
    sessions::SessionsApi,
    events::EventsApi,
    mfa::MfaApi,
    tokens::TokensApi,
    posts::PostsApi,
    admin::AdminApi,
    health::HealthApi,
);

const DESCRIPTION: &str = "\
An OAuth2 password-flow service with JWT bearer tokens.

Register with `POST /users`, then press **Authorize** and log in with your email as the \
username: Swagger UI fetches a token from `/login` and sends it with every call.

Errors are JSON: `{\"detail\": \"...\"}`, except at `/login`, which answers OAuth2's \
`{\"error\", \"error_description\"}`.";

/// The page size of a list when the caller does not say.
pub(crate) fn default_limit() -> u32 {
    10
}

/// The page the `limit` and `skip` query parameters of a list ask for. Their validators already
/// hold them to 1..=100 and >= 0; this turns them into the domain's `Page`.
pub(crate) fn page(limit: u32, skip: i64) -> Result<Page, ApiError> {
    let skip = u64::try_from(skip).map_err(|_| ApiError::invalid("skip: must be at least 0"))?;
    Page::new(limit, skip).map_err(|err| ApiError::invalid(format!("limit: {err}")))
}

/// The OpenAPI service: the operations and the document that describes them.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Warden", env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .license(LicenseObject::new(env!("CARGO_PKG_LICENSE")))
}

/// The OpenAPI document, as `GET /openapi.json` serves it and `docs/openapi.json` commits it.
pub fn openapi_json() -> String {
    service().spec()
}
