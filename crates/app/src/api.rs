//! The HTTP API: the operations, grouped by tag, and the OpenAPI service that serves them.

pub mod admin;
pub mod auth;
pub mod body;
pub mod error;
pub mod health;
pub mod jwks;
pub mod posts;
pub mod security;
pub mod users;

use poem_openapi::{OpenApiService, Tags};

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
    users::UsersApi,
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

/// The OpenAPI service: the operations and the document that describes them.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            jwks::JwksApi,
            users::UsersApi,
            posts::PostsApi,
            admin::AdminApi,
            health::HealthApi,
        ),
        "Warden",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
}

/// The OpenAPI document, as `GET /openapi.json` serves it and `docs/openapi.json` commits it.
pub fn openapi_json() -> String {
    service().spec()
}
