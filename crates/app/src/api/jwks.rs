//! `GET /.well-known/jwks.json`: the public keys access tokens may be signed with (RFC 7517),
//! so that other services can verify Warden's tokens without sharing a secret.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use crate::api::state::AppState;

/// A set of public keys.
#[derive(Debug, Object)]
struct JwkSet {
    /// With EdDSA: the signing key, then earlier keys still accepted. With HS256: empty, as
    /// the shared secret is never published.
    keys: Vec<PublicJwk>,
}

/// An Ed25519 public key (RFC 8037).
#[derive(Debug, Object)]
struct PublicJwk {
    /// Always `OKP`.
    kty: String,
    /// Always `Ed25519`.
    crv: String,
    /// The public key, base64url.
    x: String,
    /// The key id tokens signed with this key carry: its RFC 7638 thumbprint.
    kid: String,
    /// Always `EdDSA`.
    alg: String,
    /// Always `sig`.
    #[oai(rename = "use")]
    key_use: String,
}

#[derive(Debug, Default)]
pub struct JwksApi;

#[OpenApi(tag = "ApiTags::Auth")]
impl JwksApi {
    /// Token verification keys (JWKS)
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&AppState>) -> Json<JwkSet> {
        let keys = state
            .tokens
            .public_keys()
            .iter()
            .map(|key| PublicJwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: key.x.clone(),
                kid: key.kid.clone(),
                alg: "EdDSA".into(),
                key_use: "sig".into(),
            })
            .collect();
        Json(JwkSet { keys })
    }
}
