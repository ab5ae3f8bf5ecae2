//! Every scope an operation declares is the scope it enforces, for every operation in the
//! generated OpenAPI document: new operations are covered without anyone listing them here.

use poem::http::{Method, StatusCode};
use serde_json::Value;
use warden_domain::scope::Scope;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app => every_declared_scope_is_enforced_before_the_body,
);

/// Each operation of the document that needs scopes: (method, path, scopes).
fn scoped_operations() -> Vec<(Method, String, Vec<String>)> {
    let document: Value = serde_json::from_str(&warden_app::api::openapi_json()).unwrap();
    let mut operations = Vec::new();
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            for requirement in operation["security"].as_array().into_iter().flatten() {
                let scopes: Vec<String> = requirement["OAuth2PasswordBearer"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|scope| scope.as_str().unwrap().to_owned())
                    .collect();
                if !scopes.is_empty() {
                    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                    operations.push((method, path.clone(), scopes));
                }
            }
        }
    }
    operations
}

/// The path with every `{parameter}` set to an id nobody has, so that an operation that gets
/// past the checks answers 404 or 422 rather than changing something that exists.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "987654"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_declared_scope_is_enforced_before_the_body(plain: TestApp) {
    // Email on, so that its operations do their work rather than answer 501.
    let app = TestApp::on(
        std::sync::Arc::clone(&plain.db),
        &warden_app::testing::UNREACHABLE_MAIL,
    );
    drop(plain);
    let operations = scoped_operations();
    assert!(operations.len() >= 12, "the walk found only {operations:?}");
    let every_scope: Vec<&str> = Scope::ALL.into_iter().map(Scope::as_str).collect();
    for (i, (method, path, needed)) in operations.iter().enumerate() {
        // An admin of its own per operation: an operation that deletes the caller's account must
        // not spoil the next one.
        let admin = app.admin(&format!("admin{i}@example.com")).await;
        let path = concrete(path);
        // A body that is not JSON: a check made after the body would answer 422.
        let send = |bearer: String| {
            let (method, path) = (method.clone(), path.clone());
            let app = &app;
            async move {
                app.client
                    .request(method, path)
                    .header("authorization", bearer)
                    .content_type("application/json")
                    .body("{not json")
                    .send()
                    .await
            }
        };
        for missing in needed {
            let others: Vec<&str> = every_scope
                .iter()
                .copied()
                .filter(|scope| scope != missing)
                .collect();
            let without = app.log_in_again(&admin, Some(&others.join(" "))).await;
            let response = send(without.bearer).await;
            let expected = format!(r#"Bearer error="insufficient_scope", scope="{missing}""#);
            assert_eq!(
                header(&response, "www-authenticate").as_deref(),
                Some(expected.as_str()),
                "{method} {path} without {missing}"
            );
            assert_detail(response, StatusCode::FORBIDDEN, "Not enough permissions").await;
        }
        let with = app.log_in_again(&admin, Some(&needed.join(" "))).await;
        let response = send(with.bearer).await;
        let status = response.0.status();
        assert_ne!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} with {needed:?}: {:?}",
            json_of(response).await
        );
        assert!(
            !status.is_server_error(),
            "{method} {path} with {needed:?}: {status}"
        );
    }
}
