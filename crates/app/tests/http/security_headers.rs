//! The security headers every answer carries, and Swagger UI's content security policy.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::http::{Method, StatusCode};
use poem::test::TestResponse;
use sha2::{Digest, Sha256};
use warden_adapters::Backend;

use crate::support::*;

/// The headers that must be on every answer, whatever its status.
fn assert_protected(response: &TestResponse, what: &str) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            header(response, name).as_deref(),
            Some(value),
            "{what}: {name}"
        );
    }
    let policy = header(response, "content-security-policy").unwrap_or_default();
    assert!(
        policy.contains("frame-ancestors 'none'"),
        "{what}: content-security-policy {policy:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_says_do_not_sniff_frame_or_refer() {
    let app = TestApp::new(Backend::Sqlite).await;
    let api_policy = "default-src 'none'; frame-ancestors 'none'";

    let response = app.client.get("/health/live").send().await;
    response.assert_status_is_ok();
    assert_protected(&response, "200");
    assert_eq!(
        header(&response, "content-security-policy").as_deref(),
        Some(api_policy)
    );

    let user = app.user("sniff@example.com").await;
    let response = app
        .client
        .get("/users/me")
        .header("authorization", &user.bearer)
        .send()
        .await;
    response.assert_status_is_ok();
    assert_protected(&response, "a JSON answer");

    let big = "x".repeat(70 * 1024);
    for (response, status) in [
        (
            app.client.get("/users/me").send().await,
            StatusCode::UNAUTHORIZED,
        ),
        (
            app.client.get("/no-such-thing").send().await,
            StatusCode::NOT_FOUND,
        ),
        (
            app.client.request(Method::PATCH, "/posts").send().await,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            app.client
                .post("/users")
                .content_type("application/json")
                .header("content-length", big.len())
                .body(big.clone())
                .send()
                .await,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        response.assert_status(status);
        assert_protected(&response, status.as_str());
        assert_eq!(
            header(&response, "content-security-policy").as_deref(),
            Some(api_policy),
            "{status}"
        );
    }
}

/// Swagger UI's pages run their inline scripts, each allowed by its hash, and nothing else:
/// no other script, no `eval`, nothing loaded from elsewhere.
#[tokio::test(flavor = "multi_thread")]
async fn swagger_ui_runs_only_its_own_inline_scripts() {
    let app = TestApp::new(Backend::Sqlite).await;
    for path in ["/docs", "/docs/", "/docs/oauth-receiver.html"] {
        // A HEAD first, whose answer has no page to work the policy out from: the GET after it
        // still gets the page's own.
        let response = app.client.head(path).send().await;
        response.assert_status_is_ok();
        assert_protected(&response, path);
        let response = app.client.get(path).send().await;
        response.assert_status_is_ok();
        assert_protected(&response, path);
        let policy = header(&response, "content-security-policy").unwrap();
        let page = response.0.into_body().into_string().await.unwrap();
        // Each script runs from its opening tag to the first `</script>` (which a script
        // cannot hold: it would end the element in the browser too).
        let mut scripts = Vec::new();
        let mut rest = page.as_str();
        while let Some(start) = rest.find("<script") {
            let after = &rest[start..];
            let body = &after[after.find('>').unwrap() + 1..];
            let end = body.find("</script>").unwrap();
            scripts.push(&body[..end]);
            rest = &body[end..];
        }
        // Everything the page needs is in it: no script, stylesheet or frame from elsewhere.
        let mut markup = page.clone();
        for script in &scripts {
            markup = markup.replacen(script, "", 1);
        }
        if let Some((before, style)) = markup.split_once("<style") {
            markup = format!("{before}{}", &style[style.find("</style>").unwrap()..]);
        }
        for outside in [" src=", "<link", "<iframe", "<style", "<object"] {
            assert!(
                !markup.contains(outside),
                "{path} loads something: {outside}"
            );
        }
        assert!(!scripts.is_empty(), "{path} has no script");
        let hashes: Vec<String> = scripts
            .iter()
            .map(|script| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(script))))
            .collect();
        assert_eq!(
            policy,
            format!(
                "default-src 'none'; script-src {}; style-src 'unsafe-inline'; \
                 img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                 form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
                hashes.join(" ")
            ),
            "{path}"
        );
    }
}
