//! Access tokens as JWTs (RFC 9068 profile), signed with HS256.
//!
//! What a token must be to pass, each checked here: signed with HS256 by our secret (no other
//! algorithm, `none` included, is ever accepted); `typ: at+jwt`, so that no other kind of JWT
//! signed with the same secret can pass for an access token; our issuer and audience; `exp`,
//! `nbf`, `iat`, `sub`, `user_id`, `sid`, `scope` and `jti` present and consistent; the current
//! time within `nbf..exp`, give or take a leeway of at most five seconds.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_domain::ports::{TokenIssuer, TokenVerifier};
use warden_domain::{
    AccessClaims, AccessGrant, InvalidTokenError, IssuedToken, Scopes, SessionId, UserId,
};

/// The JOSE `typ` of an access token (RFC 9068 section 2.1).
const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The shortest HS256 secret accepted: as many bytes as the hash's output (RFC 7518 section 3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// The most clock skew tolerated between us and whoever issued a token.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);
/// Longer tokens are refused before any parsing. Ours are about 400 bytes.
const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Clone)]
pub struct JwtConfig {
    pub secret: SecretSlice<u8>,
    pub issuer: String,
    pub audience: String,
    pub access_token_lifetime: Duration,
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &"[REDACTED]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("leeway", &self.leeway)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtConfigError {
    #[error("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long, it is {0}")]
    SecretTooShort(usize),
    #[error("the token leeway must be at most {} seconds", MAX_LEEWAY.as_secs())]
    LeewayTooLong,
    #[error("the access token lifetime must be at least one second")]
    LifetimeTooShort,
}

/// The claims of an access token, as they are on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    /// The user id as a string, as RFC 7519 requires.
    sub: String,
    /// The same id as a JSON integer, for clients written against the FastAPI course.
    user_id: i64,
    sid: String,
    scope: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

/// Issues and verifies HS256 access tokens.
#[derive(Clone)]
pub struct JwtHs256 {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime: Duration,
}

impl std::fmt::Debug for JwtHs256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtHs256")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl JwtHs256 {
    pub fn new(config: &JwtConfig) -> Result<Self, JwtConfigError> {
        let secret = config.secret.expose_secret();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(JwtConfigError::SecretTooShort(secret.len()));
        }
        if config.leeway > MAX_LEEWAY {
            return Err(JwtConfigError::LeewayTooLong);
        }
        if config.access_token_lifetime < Duration::from_secs(1) {
            return Err(JwtConfigError::LifetimeTooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            lifetime: config.access_token_lifetime,
        })
    }

    fn decode(&self, token: &str) -> Result<AccessClaims, InvalidTokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidTokenError::new("token too long"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| InvalidTokenError::new(err.to_string()))?;
        let is_access_token = data.header.typ.as_deref().is_some_and(|typ| {
            // RFC 9068 allows the media type's full form too; JOSE compares it case-insensitively.
            let typ = typ.strip_prefix("application/").unwrap_or(typ);
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
        });
        if !is_access_token {
            return Err(InvalidTokenError::new("not an access token (typ)"));
        }
        let claims = data.claims;
        if claims.sub != claims.user_id.to_string() {
            return Err(InvalidTokenError::new("sub and user_id disagree"));
        }
        let session_id =
            SessionId::parse(&claims.sid).ok_or_else(|| InvalidTokenError::new("malformed sid"))?;
        let scopes =
            Scopes::parse(&claims.scope).map_err(|err| InvalidTokenError::new(err.to_string()))?;
        Ok(AccessClaims {
            user_id: UserId::new(claims.user_id),
            session_id,
            scopes,
        })
    }
}

#[async_trait]
impl TokenIssuer for JwtHs256 {
    async fn issue(&self, grant: &AccessGrant) -> anyhow::Result<IssuedToken> {
        let now = Utc::now().timestamp();
        let lifetime = i64::try_from(self.lifetime.as_secs()).context("lifetime overflows")?;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.user_id.to_string(),
            user_id: grant.user_id.get(),
            sid: grant.session_id.to_string(),
            scope: grant.scopes.to_string(),
            iat: now,
            nbf: now,
            exp: now + lifetime,
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .context("cannot sign access token")?;
        Ok(IssuedToken {
            token,
            expires_in: self.lifetime,
        })
    }
}

#[async_trait]
impl TokenVerifier for JwtHs256 {
    async fn verify(&self, token: &str) -> Result<AccessClaims, InvalidTokenError> {
        self.decode(token)
    }
}
