//! Signing keys: HS256 publishes nothing; EdDSA tokens verify with `/.well-known/jwks.json`
//! alone, and keys rotate without logging anybody out.

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::StatusCode;
use serde_json::{Value, json};
use warden_adapters::testing::ed25519_key_pair;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app =>
    with_hs256_no_key_is_published,
    a_second_service_verifies_eddsa_tokens_with_the_jwks_alone,
    during_a_key_rotation_old_tokens_work_until_their_key_is_retired,
    the_metadata_names_the_jwks_only_with_eddsa,
);

/// A key pair written to files in `dir`: (private key path, public key path).
fn key_files(dir: &Path, name: &str) -> (String, String) {
    let (private, public) = ed25519_key_pair();
    let private_path = dir.join(format!("{name}.pem"));
    let public_path = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&private_path, private).unwrap();
    std::fs::write(&public_path, public).unwrap();
    (
        private_path.display().to_string(),
        public_path.display().to_string(),
    )
}

/// An app on `app`'s database signing with `private`, accepting `previous` too.
fn eddsa_app(app: &TestApp, private: &str, previous: &[&str]) -> TestApp {
    let previous = previous.join(",");
    let mut args = vec![
        "--jwt-algorithm",
        "EdDSA",
        "--jwt-private-key-file",
        private,
    ];
    if !previous.is_empty() {
        args.extend(["--jwt-previous-public-key-files", &previous]);
    }
    TestApp::on(Arc::clone(&app.db), &args)
}

async fn jwks(app: &TestApp) -> Value {
    let response = app.client.get("/.well-known/jwks.json").send().await;
    response.assert_status_is_ok();
    json_of(response).await
}

async fn the_metadata_names_the_jwks_only_with_eddsa(app: TestApp) {
    let metadata = |app: TestApp| async move {
        let response = app
            .client
            .get("/.well-known/oauth-authorization-server")
            .header("host", "auth.example.test")
            .send()
            .await;
        response.assert_status_is_ok();
        json_of(response).await
    };
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = key_files(dir.path(), "current");
    let eddsa = eddsa_app(&app, &private, &[]);
    assert_eq!(metadata(app).await.get("jwks_uri"), None);
    assert_eq!(
        metadata(eddsa).await["jwks_uri"],
        "http://auth.example.test/.well-known/jwks.json"
    );
}

async fn with_hs256_no_key_is_published(app: TestApp) {
    assert_eq!(jwks(&app).await, json!({"keys": []}));
}

async fn a_second_service_verifies_eddsa_tokens_with_the_jwks_alone(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = key_files(dir.path(), "current");
    let warden = eddsa_app(&app, &private, &[]);
    warden
        .register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let token = warden
        .log_in("ann@example.com", PASSWORD, None)
        .await
        .access_token;

    // What another service would do, with jsonwebtoken and nothing of Warden's.
    let keys: JwkSet = serde_json::from_value(jwks(&warden).await).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let jwk = keys.find(&kid).expect("the token's key is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["warden"]);
    validation.set_issuer(&["warden"]);
    let claims =
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap()
            .claims;
    assert_eq!(claims["scope"], "profile posts:read posts:write");

    let published = serde_json::to_value(jwk).unwrap();
    assert_eq!(published["kty"], "OKP");
    assert_eq!(published["crv"], "Ed25519");
    assert_eq!(published["alg"], "EdDSA");
    assert_eq!(published["use"], "sig");
    assert!(
        published.get("d").is_none(),
        "the private key was published"
    );

    warden
        .get_with("/users/me", &format!("Bearer {token}"))
        .await
        .assert_status_is_ok();
}

async fn during_a_key_rotation_old_tokens_work_until_their_key_is_retired(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let (first_private, first_public) = key_files(dir.path(), "first");
    let (second_private, second_public) = key_files(dir.path(), "second");
    let (third_private, _) = key_files(dir.path(), "third");

    let before = eddsa_app(&app, &first_private, &[]);
    before
        .register("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let old = before.log_in("ann@example.com", PASSWORD, None).await;
    let old_bearer = format!("Bearer {}", &old.access_token);

    // The new key signs; the previous one still verifies.
    let during = eddsa_app(&app, &second_private, &[&first_public]);
    during
        .get_with("/users/me", &old_bearer)
        .await
        .assert_status_is_ok();
    let new = during.log_in("ann@example.com", PASSWORD, None).await;
    let new_bearer = format!("Bearer {}", &new.access_token);
    assert_eq!(jwks(&during).await["keys"].as_array().unwrap().len(), 2);
    // Refresh tokens are not signed: they outlive any key.
    during
        .refresh(&old.refresh_token)
        .await
        .assert_status_is_ok();

    // The first key retired: its tokens are refused, the second key's are not.
    let after = eddsa_app(&app, &third_private, &[&second_public]);
    let response = after.get_with("/users/me", &old_bearer).await;
    assert_detail(
        response,
        StatusCode::UNAUTHORIZED,
        "Could not validate credentials",
    )
    .await;
    after
        .get_with("/users/me", &new_bearer)
        .await
        .assert_status_is_ok();
    let kids: Vec<Value> = jwks(&after).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].clone())
        .collect();
    assert!(!kids.contains(&json!(
        jsonwebtoken::decode_header(&old.access_token).unwrap().kid
    )));
}
