//! Access-token signing and verification: what a valid token contains, and every way a token
//! can be wrong. Bad tokens are forged here with jsonwebtoken directly, as an attacker would.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{SecretSlice, SecretString};
use serde_json::{Value, json};
use warden_adapters::testing::ed25519_key_pair;
use warden_adapters::{JwtConfig, JwtConfigError, JwtKeys, JwtTokens};
use warden_domain::{
    accounts::UserId,
    crypto::{AccessGrant, TokenIssuer, TokenVerifier},
    scope::Scopes,
    sessions::{AuthMethods, ClientId, SessionId},
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

fn config(secret: &[u8]) -> JwtConfig {
    with_keys(JwtKeys::Hs256 {
        secret: SecretSlice::from(secret.to_vec()),
    })
}

fn with_keys(keys: JwtKeys) -> JwtConfig {
    JwtConfig {
        keys,
        issuer: "warden".into(),
        audience: "warden-api".into(),
        access_token_lifetime: Duration::from_secs(15 * 60),
        leeway: Duration::from_secs(5),
    }
}

fn jwt() -> JwtTokens {
    JwtTokens::new(&config(SECRET)).unwrap()
}

fn grant() -> AccessGrant {
    AccessGrant {
        user_id: UserId::new(42),
        session_id: SessionId::random(),
        scopes: Scopes::parse("profile posts:read").unwrap(),
        client_id: ClientId::new("swagger-ui").unwrap(),
        auth_methods: AuthMethods::Password,
    }
}

/// Claims as Warden would issue them now, for forging variants of.
fn valid_claims(session_id: SessionId) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": "warden", "aud": "warden-api", "sub": "42", "user_id": 42,
        "sid": session_id.to_string(), "scope": "profile", "iat": now, "nbf": now,
        "exp": now + 900, "jti": "3f1c6c0e-0000-4000-8000-000000000000",
    })
}

fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn at_jwt(alg: Algorithm) -> Header {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header
}

async fn assert_refused(token: &str, why: &str) {
    let result = jwt().verify_access_token(token).await;
    assert!(result.is_err(), "{why}: token was accepted");
}

#[tokio::test]
async fn an_issued_token_verifies_to_what_it_was_issued_for() {
    let grant = grant();
    let issued = jwt().issue(&grant).await.unwrap();

    let claims = jwt().verify_access_token(&issued.token).await.unwrap();

    assert_eq!(claims.user_id, grant.user_id);
    assert_eq!(claims.session_id, grant.session_id);
    assert_eq!(claims.scopes, grant.scopes);
    assert_eq!(issued.expires_in, Duration::from_secs(900));
}

#[tokio::test]
async fn an_issued_token_carries_every_claim_of_the_contract() {
    let grant = grant();
    let issued = jwt().issue(&grant).await.unwrap();

    let header = jsonwebtoken::decode_header(&issued.token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["warden-api"]);
    let claims = jsonwebtoken::decode::<Value>(
        &issued.token,
        &DecodingKey::from_secret(SECRET),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "warden");
    assert_eq!(claims["aud"], "warden-api");
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["user_id"], 42);
    assert_eq!(claims["sid"], grant.session_id.to_string());
    assert_eq!(claims["scope"], "profile posts:read");
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((Utc::now().timestamp() - iat).abs() <= 2);
    assert_eq!(nbf, iat);
    assert_eq!(exp - iat, 900);
    let jti = claims["jti"].as_str().unwrap();
    let other = jwt().issue(&grant).await.unwrap().token;
    assert_ne!(
        Some(jti),
        jsonwebtoken::decode::<Value>(&other, &DecodingKey::from_secret(SECRET), &validation)
            .unwrap()
            .claims["jti"]
            .as_str(),
        "jti must be unique per token"
    );
}

#[tokio::test]
async fn a_well_forged_token_with_the_right_secret_is_accepted() {
    // The baseline for the refusals below: each changes one thing of this token.
    let sid = SessionId::random();
    let token = sign(&at_jwt(Algorithm::HS256), &valid_claims(sid), SECRET);
    assert_eq!(
        jwt().verify_access_token(&token).await.unwrap().session_id,
        sid
    );
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let issued = jwt().issue(&grant()).await.unwrap().token;
    let parts: Vec<&str> = issued.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("profile posts:read posts:write admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);

    assert_refused(&tampered, "tampered payload").await;
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let token = sign(
        &at_jwt(Algorithm::HS256),
        &valid_claims(SessionId::random()),
        b"another-secret-another-secret-another-secret",
    );
    assert_refused(&token, "wrong secret").await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let mut claims = valid_claims(SessionId::random());
    let now = Utc::now().timestamp();
    claims["iat"] = json!(now - 1000);
    claims["nbf"] = json!(now - 1000);
    claims["exp"] = json!(now - 10); // beyond the five seconds of leeway
    assert_refused(&sign(&at_jwt(Algorithm::HS256), &claims, SECRET), "expired").await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    let mut claims = valid_claims(SessionId::random());
    claims["nbf"] = json!(Utc::now().timestamp() + 60);
    assert_refused(
        &sign(&at_jwt(Algorithm::HS256), &claims, SECRET),
        "nbf in the future",
    )
    .await;
}

#[tokio::test]
async fn an_alg_none_token_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let payload = URL_SAFE_NO_PAD.encode(valid_claims(SessionId::random()).to_string());
    assert_refused(&format!("{header}.{payload}."), "alg none").await;
    assert_refused(
        &format!("{header}.{payload}.c2ln"),
        "alg none with a signature",
    )
    .await;
}

#[tokio::test]
async fn a_token_with_another_hmac_algorithm_is_refused() {
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&at_jwt(alg), &valid_claims(SessionId::random()), SECRET);
        assert_refused(&token, &format!("{alg:?}")).await;
    }
}

#[tokio::test]
async fn a_token_claiming_an_asymmetric_algorithm_is_refused() {
    // The classic confusion attack: an RS256 header over an HMAC made with a known key.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"at+jwt"}"#);
    let honest = sign(
        &at_jwt(Algorithm::HS256),
        &valid_claims(SessionId::random()),
        SECRET,
    );
    let rest = honest.split_once('.').unwrap().1;
    assert_refused(&format!("{header}.{rest}"), "RS256 header").await;
}

#[tokio::test]
async fn a_token_of_another_type_is_refused() {
    let claims = valid_claims(SessionId::random());
    let mut plain_jwt = Header::new(Algorithm::HS256);
    plain_jwt.typ = Some("JWT".into());
    assert_refused(&sign(&plain_jwt, &claims, SECRET), "typ JWT").await;
    let mut no_typ = Header::new(Algorithm::HS256);
    no_typ.typ = None;
    assert_refused(&sign(&no_typ, &claims, SECRET), "no typ").await;
}

#[tokio::test]
async fn the_media_type_form_of_the_type_is_accepted() {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("application/AT+JWT".into());
    let token = sign(&header, &valid_claims(SessionId::random()), SECRET);
    assert!(jwt().verify_access_token(&token).await.is_ok());
}

#[tokio::test]
async fn a_token_for_another_issuer_or_audience_is_refused() {
    let mut claims = valid_claims(SessionId::random());
    claims["iss"] = json!("someone-else");
    assert_refused(&sign(&at_jwt(Algorithm::HS256), &claims, SECRET), "issuer").await;

    let mut claims = valid_claims(SessionId::random());
    claims["aud"] = json!("another-api");
    assert_refused(
        &sign(&at_jwt(Algorithm::HS256), &claims, SECRET),
        "audience",
    )
    .await;
}

#[tokio::test]
async fn a_token_missing_a_claim_is_refused() {
    for claim in [
        "iss", "aud", "sub", "user_id", "sid", "scope", "iat", "nbf", "exp", "jti",
    ] {
        let mut claims = valid_claims(SessionId::random());
        claims.as_object_mut().unwrap().remove(claim);
        assert_refused(&sign(&at_jwt(Algorithm::HS256), &claims, SECRET), claim).await;
    }
}

#[tokio::test]
async fn a_token_with_inconsistent_or_malformed_claims_is_refused() {
    let cases = [
        ("sub", json!("43")),
        ("user_id", json!("42")),
        ("sid", json!("not-a-uuid")),
        ("scope", json!("profile root")),
    ];
    for (claim, value) in cases {
        let mut claims = valid_claims(SessionId::random());
        claims[claim] = value;
        assert_refused(&sign(&at_jwt(Algorithm::HS256), &claims, SECRET), claim).await;
    }
}

#[tokio::test]
async fn garbage_and_oversized_tokens_are_refused() {
    for token in ["", "abc", "a.b.c", "....", "\u{0}"] {
        assert_refused(token, token).await;
    }
    let honest = jwt().issue(&grant()).await.unwrap().token;
    assert_refused(&format!("{honest}{}", "A".repeat(5000)), "oversized").await;
}

#[test]
fn a_secret_under_32_bytes_is_refused_at_start() {
    let err = JwtTokens::new(&config(b"too-short")).unwrap_err();
    assert_eq!(err, JwtConfigError::SecretTooShort(9));
    assert!(JwtTokens::new(&config(&[7; 32])).is_ok());
}

#[test]
fn a_leeway_over_five_seconds_is_refused_at_start() {
    let mut config = config(SECRET);
    config.leeway = Duration::from_secs(6);
    assert_eq!(
        JwtTokens::new(&config).unwrap_err(),
        JwtConfigError::LeewayTooLong
    );
}

/// EdDSA tokens signed with `signing`, also accepting the keys in `previous`.
fn eddsa(signing: &str, previous: &[&str]) -> JwtTokens {
    JwtTokens::new(&with_keys(JwtKeys::EdDsa {
        signing: SecretString::from(signing.to_owned()),
        previous: previous.iter().map(|pem| (*pem).to_owned()).collect(),
    }))
    .unwrap()
}

#[tokio::test]
async fn eddsa_tokens_carry_the_signing_keys_id_and_verify() {
    let (private, _) = ed25519_key_pair();
    let jwt = eddsa(&private, &[]);
    let issued = jwt.issue(&grant()).await.unwrap().token;

    let header = jsonwebtoken::decode_header(&issued).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();
    assert_eq!(jwt.public_keys()[0].kid, kid);
    assert_eq!(kid.len(), 43, "an RFC 7638 SHA-256 thumbprint, base64url");
    assert_eq!(
        jwt.verify_access_token(&issued).await.unwrap().user_id,
        UserId::new(42)
    );
}

#[tokio::test]
async fn during_a_rotation_the_previous_key_is_accepted_and_a_retired_one_refused() {
    let (old_private, old_public) = ed25519_key_pair();
    let (new_private, _) = ed25519_key_pair();
    let (retired_private, _) = ed25519_key_pair();
    let before = eddsa(&old_private, &[]);
    let retired = eddsa(&retired_private, &[]);
    let after = eddsa(&new_private, &[&old_public]);

    let from_before = before.issue(&grant()).await.unwrap().token;
    let from_after = after.issue(&grant()).await.unwrap().token;
    let from_retired = retired.issue(&grant()).await.unwrap().token;

    assert!(after.verify_access_token(&from_after).await.is_ok());
    assert!(
        after.verify_access_token(&from_before).await.is_ok(),
        "the previous key was refused"
    );
    let err = after.verify_access_token(&from_retired).await.unwrap_err();
    assert!(err.reason.contains("kid"), "{err:?}");
    let kids: Vec<&str> = after
        .public_keys()
        .iter()
        .map(|key| key.kid.as_str())
        .collect();
    assert_eq!(
        kids,
        [
            jsonwebtoken::decode_header(&from_after)
                .unwrap()
                .kid
                .unwrap(),
            jsonwebtoken::decode_header(&from_before)
                .unwrap()
                .kid
                .unwrap(),
        ]
    );
}

#[tokio::test]
async fn an_eddsa_token_without_a_kid_or_with_a_forged_one_is_refused() {
    let (private, _) = ed25519_key_pair();
    let (other_private, _) = ed25519_key_pair();
    let jwt = eddsa(&private, &[]);
    let claims = valid_claims(SessionId::random());
    let mut header = at_jwt(Algorithm::EdDSA);

    let key = ed_key(&private);
    assert_refused_by(
        &jwt,
        &jsonwebtoken::encode(&header, &claims, &key).unwrap(),
        "no kid",
    )
    .await;

    // Another key claiming our key id.
    header.kid = Some(jwt.public_keys()[0].kid.clone());
    let other = ed_key(&other_private);
    let forged = jsonwebtoken::encode(&header, &claims, &other).unwrap();
    assert_refused_by(&jwt, &forged, "forged kid").await;
}

#[tokio::test]
async fn the_algorithm_is_pinned_either_way() {
    let (private, _) = ed25519_key_pair();
    let ed = eddsa(&private, &[]);
    let hs = jwt();

    // An HS256 token with the kid of our Ed25519 key, signed with its public key as the HMAC
    // secret: the classic confusion attack.
    let mut header = at_jwt(Algorithm::HS256);
    header.kid = Some(ed.public_keys()[0].kid.clone());
    let public_x = URL_SAFE_NO_PAD.decode(&ed.public_keys()[0].x).unwrap();
    let confused = sign(&header, &valid_claims(SessionId::random()), &public_x);
    assert_refused_by(&ed, &confused, "HS256 to an EdDSA verifier").await;

    let eddsa_token = ed.issue(&grant()).await.unwrap().token;
    assert_refused_by(&hs, &eddsa_token, "EdDSA to an HS256 verifier").await;
}

#[test]
fn malformed_keys_refuse_to_start_without_echoing_them() {
    let (private, public) = ed25519_key_pair();
    let private_body: Vec<&str> = private
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();

    let bad_signing = JwtTokens::new(&with_keys(JwtKeys::EdDsa {
        signing: SecretString::from(public.clone()),
        previous: vec![],
    }))
    .unwrap_err();
    assert!(
        matches!(bad_signing, JwtConfigError::BadSigningKey(_)),
        "{bad_signing:?}"
    );

    // A private key pasted where a public one belongs.
    let bad_previous = JwtTokens::new(&with_keys(JwtKeys::EdDsa {
        signing: SecretString::from(private.clone()),
        previous: vec![public, private.clone()],
    }))
    .unwrap_err();
    assert!(
        matches!(
            bad_previous,
            JwtConfigError::BadPreviousKey { index: 2, .. }
        ),
        "{bad_previous:?}"
    );
    for line in private_body {
        assert!(
            !bad_previous.to_string().contains(line),
            "key material in {bad_previous}"
        );
    }
}

/// The jsonwebtoken key for a PKCS#8 PEM private key, to forge tokens with.
fn ed_key(pem: &str) -> EncodingKey {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let der = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    EncodingKey::from_ed_der(der.as_bytes())
}

async fn assert_refused_by(jwt: &JwtTokens, token: &str, why: &str) {
    assert!(
        jwt.verify_access_token(token).await.is_err(),
        "{why}: token was accepted"
    );
}
