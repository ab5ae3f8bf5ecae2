//! Access tokens as JWTs (RFC 9068 profile), signed with HS256 (a shared secret, the default) or
//! EdDSA (Ed25519 key pairs, whose public halves `/.well-known/jwks.json` publishes).
//!
//! What a token must be to pass, each checked here: signed with the configured algorithm by one
//! of our keys (no other algorithm, `none` included, is ever accepted; with EdDSA the header's
//! `kid` picks the key, and a key no longer configured is refused); `typ: at+jwt`, so that no
//! other kind of JWT
//! signed with the same secret can pass for an access token; our issuer and audience; `exp`,
//! `nbf`, `iat`, `sub`, `user_id`, `sid`, `scope` and `jti` present and consistent (`client_id` and
//! `amr` are issued, and not required of tokens from earlier releases); the current
//! time within `nbf..exp`, give or take a leeway of at most five seconds.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use warden_domain::{
    accounts::UserId,
    crypto::{
        AccessClaims, AccessGrant, InvalidTokenError, IssuedToken, TokenDetails, TokenIssuer,
        TokenVerifier,
    },
    scope::Scopes,
    sessions::{ClientId, SessionId},
};

/// The JOSE `typ` of an access token (RFC 9068 section 2.1).
const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The shortest HS256 secret accepted: as many bytes as the hash's output (RFC 7518 section 3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// The most clock skew tolerated between us and whoever issued a token.
pub const MAX_LEEWAY: Duration = Duration::from_secs(5);
/// Longer tokens are refused before any parsing. Ours are about 400 bytes.
const MAX_TOKEN_BYTES: usize = 4096;

/// The keys tokens are signed and verified with. Its `Debug` shows no secret: the secret and
/// the private key are `secrecy` types, which print redacted.
#[derive(Debug, Clone)]
pub enum JwtKeys {
    /// HS256 with one shared secret of at least 32 bytes.
    Hs256 { secret: SecretSlice<u8> },
    /// EdDSA: tokens are signed with `signing` (an Ed25519 private key, PKCS#8 PEM) and carry
    /// its key id; tokens signed by the keys in `previous` (Ed25519 public keys, SPKI PEM) are
    /// still accepted, so that keys can be rotated without logging everybody out.
    EdDsa {
        signing: SecretString,
        previous: Vec<String>,
    },
}

#[derive(Clone)]
pub struct JwtConfig {
    pub keys: JwtKeys,
    pub issuer: String,
    pub audience: String,
    pub access_token_lifetime: Duration,
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithm = match self.keys {
            JwtKeys::Hs256 { .. } => "HS256",
            JwtKeys::EdDsa { .. } => "EdDSA",
        };
        f.debug_struct("JwtConfig")
            .field("algorithm", &algorithm)
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
    #[error("the EdDSA signing key is not an Ed25519 private key in PKCS#8 PEM: {0}")]
    BadSigningKey(String),
    #[error("previous EdDSA key number {index} is not an Ed25519 public key in PEM: {reason}")]
    BadPreviousKey { index: usize, reason: String },
}

/// A public key tokens may be signed with, as a JWK (RFC 8037): what `jwks.json` publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The RFC 7638 thumbprint of the key: tokens signed with it carry it as `kid`.
    pub kid: String,
    /// The Ed25519 public key, base64url.
    pub x: String,
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
    /// The OAuth2 client of the login (RFC 9068). Optional when reading, so that tokens of an
    /// earlier release stay valid through a rolling upgrade.
    #[serde(default)]
    client_id: String,
    /// How the login was authenticated (RFC 8176); optional when reading, likewise.
    #[serde(default)]
    amr: Vec<String>,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct JwtTokens {
    algorithm: Algorithm,
    encoding: EncodingKey,
    /// The key id signed tokens carry (EdDSA only).
    kid: Option<String>,
    /// The keys a token may be signed with: by key id with EdDSA, the one secret with HS256.
    decoding: Vec<(Option<String>, DecodingKey)>,
    public_keys: Vec<PublicKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    lifetime: Duration,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// The public half of an Ed25519 key as we publish it (its RFC 7638 thumbprint as key id), and
/// the key to verify with.
fn ed25519_public(key: &VerifyingKey) -> Result<(PublicKey, DecodingKey), String> {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    let decoding = DecodingKey::from_ed_components(&x).map_err(|err| err.to_string())?;
    let kid = Jwk::from_decoding_key(&decoding, Some(Algorithm::EdDSA))
        .and_then(|jwk| jwk.thumbprint(ThumbprintHash::SHA256))
        .map_err(|err| err.to_string())?;
    Ok((PublicKey { kid, x }, decoding))
}

/// The keys of an EdDSA configuration: the signing key, and everything tokens may be verified
/// with (the signing key's public half first, then the previous keys). PEM is parsed by
/// ed25519-dalek, which reads PKCS#8 v1 (what `openssl genpkey` writes) and v2 alike.
fn ed25519_keys(
    signing: &SecretString,
    previous: &[String],
) -> Result<(EncodingKey, Vec<PublicKey>, Vec<DecodingKey>), JwtConfigError> {
    let bad_signing = |reason: String| JwtConfigError::BadSigningKey(reason);
    let key = SigningKey::from_pkcs8_pem(signing.expose_secret())
        .map_err(|err| bad_signing(err.to_string()))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|err| bad_signing(err.to_string()))?;
    let encoding = EncodingKey::from_ed_der(der.as_bytes());
    let (current, decoding) = ed25519_public(&key.verifying_key()).map_err(bad_signing)?;
    let (mut public_keys, mut keys) = (vec![current], vec![decoding]);
    for (index, pem) in previous.iter().enumerate() {
        let bad = |reason: String| JwtConfigError::BadPreviousKey {
            index: index + 1,
            reason,
        };
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|err| bad(err.to_string()))?;
        let (public, decoding) = ed25519_public(&key).map_err(bad)?;
        if !public_keys.contains(&public) {
            public_keys.push(public);
            keys.push(decoding);
        }
    }
    Ok((encoding, public_keys, keys))
}

impl JwtTokens {
    /// The `iss` of the tokens issued, and the only one accepted.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of the tokens issued, and the only one accepted.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn new(config: &JwtConfig) -> Result<Self, JwtConfigError> {
        if config.leeway > MAX_LEEWAY {
            return Err(JwtConfigError::LeewayTooLong);
        }
        if config.access_token_lifetime < Duration::from_secs(1) {
            return Err(JwtConfigError::LifetimeTooShort);
        }
        let (algorithm, encoding, kid, decoding, public_keys) = match &config.keys {
            JwtKeys::Hs256 { secret } => {
                let secret = secret.expose_secret();
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(JwtConfigError::SecretTooShort(secret.len()));
                }
                let decoding = vec![(None, DecodingKey::from_secret(secret))];
                let encoding = EncodingKey::from_secret(secret);
                (Algorithm::HS256, encoding, None, decoding, Vec::new())
            }
            JwtKeys::EdDsa { signing, previous } => {
                let (encoding, public_keys, keys) = ed25519_keys(signing, previous)?;
                let decoding = public_keys
                    .iter()
                    .map(|public| Some(public.kid.clone()))
                    .zip(keys)
                    .collect();
                let kid = Some(public_keys[0].kid.clone());
                (Algorithm::EdDSA, encoding, kid, decoding, public_keys)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        Ok(Self {
            algorithm,
            encoding,
            kid,
            decoding,
            public_keys,
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            lifetime: config.access_token_lifetime,
        })
    }

    /// The public keys tokens may be signed with, the signing key's first. Empty with HS256,
    /// whose secret is nobody else's business.
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public_keys
    }

    /// The key `token` must be verified with: the one its `kid` names with EdDSA, the secret
    /// with HS256.
    fn key_for(&self, token: &str) -> Result<&DecodingKey, InvalidTokenError> {
        if self.algorithm != Algorithm::EdDSA {
            return Ok(&self.decoding[0].1);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| InvalidTokenError::new(err.to_string()))?;
        let kid = header.kid.ok_or_else(|| InvalidTokenError::new("no kid"))?;
        self.decoding
            .iter()
            .find(|(key_id, _)| key_id.as_deref() == Some(kid.as_str()))
            .map(|(_, key)| key)
            .ok_or_else(|| InvalidTokenError::new("unknown or retired kid"))
    }

    fn decode(&self, token: &str) -> Result<AccessClaims, InvalidTokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidTokenError::new("token too long"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, self.key_for(token)?, &self.validation)
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
        // Tokens of a release that did not issue `client_id` came from the default client.
        let client_id = if claims.client_id.is_empty() {
            ClientId::default()
        } else {
            ClientId::new(&claims.client_id)
                .map_err(|err| InvalidTokenError::new(err.to_string()))?
        };
        Ok(AccessClaims {
            user_id: UserId::new(claims.user_id),
            session_id,
            scopes,
            details: TokenDetails {
                issued_at: claims.iat,
                expires_at: claims.exp,
                token_id: claims.jti,
                client_id,
            },
        })
    }
}

#[async_trait]
impl TokenIssuer for JwtTokens {
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
            client_id: grant.client_id.as_str().to_owned(),
            amr: grant
                .auth_methods
                .values()
                .iter()
                .map(|value| (*value).to_owned())
                .collect(),
            iat: now,
            nbf: now,
            exp: now + lifetime,
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid.clone_from(&self.kid);
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .context("cannot sign access token")?;
        Ok(IssuedToken {
            token,
            expires_in: self.lifetime,
        })
    }
}

#[async_trait]
impl TokenVerifier for JwtTokens {
    async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, InvalidTokenError> {
        self.decode(token)
    }
}
