//! Interoperability with other OAuth2 software (contract section 13): the server's metadata
//! (RFC 8414), token revocation (RFC 7009) and token introspection (RFC 7662).

use poem::Request;
use poem::http::header;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use warden_domain::{personal_tokens::PERSONAL_TOKEN_PREFIX, scope::Scope};

use super::ApiTags;
use super::auth::OAuthErrorBody;
use super::auth::form::{FormSchema, OAuthForm};
use super::auth::grants::MFA_OTP_GRANT;
use super::auth::no_store;
use super::error::{ApiError, ErrorBody, Fault, RETRY_AFTER_SECONDS, detail};
use super::security::{ApiScope, Caller};
use crate::api::origin::ClientOrigin;
use crate::api::state::AppState;

/// The server's metadata (RFC 8414).
#[derive(Debug, Object)]
struct ServerMetadata {
    /// The `iss` of every access token (`JWT_ISSUER`).
    issuer: String,
    /// The token endpoint (`/login`; `/token` is the same endpoint).
    token_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    /// The public keys of EdDSA-signed tokens; absent with HS256, whose secret is never
    /// published.
    #[oai(skip_serializing_if_is_none)]
    jwks_uri: Option<String>,
    grant_types_supported: Vec<String>,
    scopes_supported: Vec<String>,
    /// Empty: there is no authorization endpoint (no browser redirects).
    response_types_supported: Vec<String>,
    /// `none`: the clients are public; a `client_id` names them and proves nothing.
    token_endpoint_auth_methods_supported: Vec<String>,
    revocation_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Debug, ApiResponse)]
enum MetadataResponse {
    #[oai(status = 200)]
    Ok(Json<Box<ServerMetadata>>),
    /// No `PUBLIC_URL` is set and the request's `Host` header is not a host.
    #[oai(status = 400)]
    BadHost(Json<ErrorBody>),
}

/// A revocation request (RFC 7009), `application/x-www-form-urlencoded`.
#[derive(Debug, Object)]
#[oai(rename = "RevocationRequest")]
pub struct RevocationForm {
    /// The access token or refresh token to revoke: either ends its whole session.
    #[oai(validator(min_length = 1))]
    token: String,
    /// `access_token` or `refresh_token`; accepted and not needed.
    token_type_hint: Option<String>,
    /// Accepted and ignored.
    client_id: Option<String>,
}

impl FormSchema for RevocationForm {
    const FIELDS: &'static [&'static str] = &["token", "token_type_hint", "client_id"];
}

#[derive(Debug, ApiResponse)]
enum RevocationResponse {
    /// Revoked, or nothing to revoke: the answer is the same whether or not the token was
    /// known (RFC 7009 section 2.2).
    #[oai(status = 200)]
    Revoked,
    /// No `token`, a repeated field, or not a form: `invalid_request`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
    /// An unexpected failure (`server_error`).
    #[oai(status = 500)]
    ServerError(Json<OAuthErrorBody>),
    /// The database cannot be reached (`temporarily_unavailable`).
    #[oai(status = 503)]
    Unavailable(Json<OAuthErrorBody>, #[oai(header = "Retry-After")] u32),
}

/// An introspection request (RFC 7662), `application/x-www-form-urlencoded`.
#[derive(Debug, Object)]
#[oai(rename = "IntrospectionRequest")]
pub struct IntrospectionForm {
    /// The access token to look at.
    #[oai(validator(min_length = 1))]
    token: String,
    /// Accepted and not needed.
    token_type_hint: Option<String>,
}

impl FormSchema for IntrospectionForm {
    const FIELDS: &'static [&'static str] = &["token", "token_type_hint"];
}

/// What an access token is (RFC 7662 section 2.2). Only `active` when it would not be accepted.
#[derive(Debug, Object, Default)]
struct Introspection {
    /// Whether the token would be accepted right now: valid, and its session and user active.
    active: bool,
    /// The scopes it carries now (an admin since demoted has lost `admin`).
    #[oai(skip_serializing_if_is_none)]
    scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    client_id: Option<String>,
    /// The account's email.
    #[oai(skip_serializing_if_is_none)]
    username: Option<String>,
    /// Always `bearer`.
    #[oai(skip_serializing_if_is_none)]
    token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    iat: Option<i64>,
    /// The user id.
    #[oai(skip_serializing_if_is_none)]
    sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    jti: Option<String>,
    /// The session.
    #[oai(skip_serializing_if_is_none)]
    sid: Option<String>,
}

#[derive(Debug, ApiResponse)]
enum IntrospectionResponse {
    #[oai(status = 200)]
    Ok(Json<Box<Introspection>>),
    /// No `token`, a repeated field, or not a form: `invalid_request`.
    #[oai(status = 400)]
    BadRequest(Json<OAuthErrorBody>),
}

#[derive(Debug, Default)]
pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl OAuthApi {
    /// Authorization server metadata (RFC 8414)
    ///
    /// Where the token, revocation and introspection endpoints are, and what they support, for
    /// client libraries that discover them. Endpoint URLs are absolute: built from
    /// `PUBLIC_URL` when it is set, else from the request's `Host`.
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "oauth_server_metadata"
    )]
    async fn metadata(&self, req: &Request, state: Data<&AppState>) -> MetadataResponse {
        let base = match &state.public_url {
            Some(url) => url.clone(),
            None => {
                let host = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|value| value.to_str().ok())
                    .filter(|host| host.parse::<poem::http::uri::Authority>().is_ok());
                let Some(host) = host else {
                    return MetadataResponse::BadHost(detail(
                        "the Host header is missing or not a host; set PUBLIC_URL",
                    ));
                };
                format!("http://{host}")
            }
        };
        let has_public_keys = !state.tokens.public_keys().is_empty();
        let strings = |values: &[&str]| values.iter().map(|&value| value.to_owned()).collect();
        MetadataResponse::Ok(Json(Box::new(ServerMetadata {
            issuer: state.tokens.issuer().to_owned(),
            token_endpoint: format!("{base}/login"),
            revocation_endpoint: format!("{base}/revoke"),
            introspection_endpoint: format!("{base}/introspect"),
            jwks_uri: has_public_keys.then(|| format!("{base}/.well-known/jwks.json")),
            grant_types_supported: strings(&["password", "refresh_token", MFA_OTP_GRANT]),
            scopes_supported: Scope::ALL
                .iter()
                .map(|scope| scope.as_str().to_owned())
                .collect(),
            response_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: strings(&["none"]),
            revocation_endpoint_auth_methods_supported: strings(&["none"]),
        })))
    }

    /// Revoke a token (RFC 7009)
    ///
    /// Send an access token or a refresh token as `token`: its whole session ends, so every
    /// token of that login stops working at once. The answer is 200 whether or not the token
    /// was known.
    #[oai(
        path = "/revoke",
        method = "post",
        operation_id = "revoke_token",
        transform = "no_store"
    )]
    async fn revoke(
        &self,
        origin: ClientOrigin,
        state: Data<&AppState>,
        form: OAuthForm<RevocationForm>,
    ) -> RevocationResponse {
        let Some(token) = form.optional("token") else {
            return RevocationResponse::BadRequest(OAuthErrorBody::missing("token"));
        };
        let origin = origin.into_request();
        match state.auth.revoke_token(token, &origin).await {
            Ok(()) => RevocationResponse::Revoked,
            Err(err) => {
                let warden_domain::error::Unknown(cause) = err;
                let fault = Fault::of(&cause);
                let body = OAuthErrorBody::of_fault(fault);
                match fault {
                    Fault::Unavailable => {
                        RevocationResponse::Unavailable(body, RETRY_AFTER_SECONDS)
                    }
                    Fault::Bug => RevocationResponse::ServerError(body),
                }
            }
        }
    }

    /// Introspect a token (RFC 7662)
    ///
    /// For resource servers: whether an access token would be accepted right now, and what it
    /// says. The caller authenticates with a bearer token holding `tokens:introspect` (admin
    /// accounts only). A token of an ended session is inactive at once.
    #[oai(
        path = "/introspect",
        method = "post",
        operation_id = "introspect_token",
        transform = "no_store"
    )]
    async fn introspect(
        &self,
        #[oai(scope = "ApiScope::TOKENS_INTROSPECT")] _auth: Caller,
        state: Data<&AppState>,
        form: OAuthForm<IntrospectionForm>,
    ) -> Result<IntrospectionResponse, ApiError> {
        let Some(token) = form.optional("token") else {
            return Ok(IntrospectionResponse::BadRequest(OAuthErrorBody::missing(
                "token",
            )));
        };
        if token.starts_with(PERSONAL_TOKEN_PREFIX) {
            let Some((found, user, scopes)) = state.auth.introspect_personal_token(token).await?
            else {
                return Ok(IntrospectionResponse::Ok(Json(Box::default())));
            };
            // A personal access token is no JWT: it has no audience, issuer, id or session.
            return Ok(IntrospectionResponse::Ok(Json(Box::new(Introspection {
                active: true,
                scope: Some(scopes.to_string()),
                username: Some(user.email.as_str().to_owned()),
                token_type: Some("bearer".into()),
                exp: Some(found.expires_at.timestamp()),
                iat: Some(found.created_at.timestamp()),
                sub: Some(user.id.to_string()),
                ..Introspection::default()
            }))));
        }
        let Some((principal, claims)) = state.auth.introspect(token).await.map_err(|err| {
            let warden_domain::error::Unknown(cause) = err;
            ApiError::from(cause)
        })?
        else {
            return Ok(IntrospectionResponse::Ok(Json(Box::default())));
        };
        Ok(IntrospectionResponse::Ok(Json(Box::new(Introspection {
            active: true,
            scope: Some(principal.scopes.to_string()),
            client_id: Some(claims.details.client_id.as_str().to_owned()),
            username: Some(principal.user.email.as_str().to_owned()),
            token_type: Some("bearer".into()),
            exp: Some(claims.details.expires_at),
            iat: Some(claims.details.issued_at),
            sub: Some(principal.user.id.to_string()),
            aud: Some(state.tokens.audience().to_owned()),
            iss: Some(state.tokens.issuer().to_owned()),
            jti: Some(claims.details.token_id),
            sid: Some(principal.session_id().to_string()),
        }))))
    }
}
