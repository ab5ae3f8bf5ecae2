//! The headers every answer carries, so that a browser never sniffs a JSON answer into a page,
//! frames one of Warden's pages in another site's, or leaks a URL through `Referer`:
//!
//! - `X-Content-Type-Options: nosniff`;
//! - `X-Frame-Options: DENY`, and CSP's `frame-ancestors 'none'` for browsers that prefer it;
//! - `Referrer-Policy: no-referrer`;
//! - `Content-Security-Policy`: for the API's answers, `default-src 'none'` (nothing in them is
//!   ever to be run or loaded); for Swagger UI (`/docs`), what its page needs and nothing more:
//!   its inline scripts by their SHA-256 hashes, computed from the page as served (poem-openapi
//!   inlines Swagger UI's bundle and the document), its inline styles, `data:` images (the
//!   stylesheet's icons), and requests to Warden itself ("Try it out", the Authorize dialog).
//!
//! Styles are allowed inline (`'unsafe-inline'`) rather than by hash: Swagger UI sets `style`
//! attributes as it renders, which a hash cannot allow; styles cannot run scripts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderName, HeaderValue, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

use crate::api::routes::DOCS_PATH;

/// The policy of every answer but Swagger UI's pages.
pub const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The Swagger UI pages' policies, by path, once worked out: the pages do not change while the
/// process runs.
#[derive(Debug, Default)]
pub struct DocsPolicies(Mutex<HashMap<String, HeaderValue>>);

/// At most this many paths' policies are kept (`/docs`, `/docs/`, the OAuth2 receiver; any
/// other spelling is worked out each time).
const KEPT: usize = 8;

/// Sets the security headers on the answer to `req`.
///
/// # Errors
///
/// None of its own: `next`'s error, if it has one.
pub async fn security_headers<E: Endpoint>(
    next: Arc<E>,
    req: Request,
    docs: Arc<DocsPolicies>,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut response = next.call(req).await?.into_response();
    let policy = if is_docs(&path) && is_html(&response) {
        docs_policy(&mut response, &path, &docs).await
    } else {
        HeaderValue::from_static(API_POLICY)
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

fn is_docs(path: &str) -> bool {
    path == DOCS_PATH
        || path
            .strip_prefix(DOCS_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

/// The policy of a Swagger UI page, from its inline scripts.
async fn docs_policy(response: &mut Response, path: &str, docs: &DocsPolicies) -> HeaderValue {
    let known = docs
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(path)
        .cloned();
    if let Some(policy) = known {
        return policy;
    }
    // The page is a string in memory: reading it cannot fail.
    let page = response.take_body().into_bytes().await.unwrap_or_default();
    let page_text = String::from_utf8_lossy(&page);
    let scripts = inline_scripts(&page_text).len();
    let policy = page_policy(&page_text);
    response.set_body(page);
    let policy = HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(API_POLICY));
    // Only a page seen whole is kept: the answer to a HEAD has no body, so no scripts.
    let mut kept = docs.0.lock().unwrap_or_else(PoisonError::into_inner);
    if scripts > 0 && kept.len() < KEPT {
        kept.insert(path.to_owned(), policy.clone());
    }
    policy
}

/// The policy under which `page` works: its inline scripts by hash, and what Swagger UI loads.
pub fn page_policy(page: &str) -> String {
    let mut scripts = String::new();
    for script in inline_scripts(page) {
        let hash = STANDARD.encode(Sha256::digest(script.as_bytes()));
        let _ = write!(scripts, " 'sha256-{hash}'");
    }
    format!(
        "default-src 'none'; script-src{scripts}; style-src 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The contents of `page`'s `<script>` elements, in order.
fn inline_scripts(page: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("<script") {
        let tag = &rest[start..];
        let Some(open) = tag.find('>') else { break };
        let body = &tag[open + 1..];
        let Some(close) = body.find("</script") else {
            break;
        };
        scripts.push(&body[..close]);
        rest = &body[close..];
    }
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inline_script_is_allowed_by_its_hash_and_nothing_else_runs() {
        let page = "<html><head><style>b{}</style><script charset=\"UTF-8\">alert(1)</script>\
                    </head><body><script>let s = \"<script>\";</script></body></html>";
        assert_eq!(inline_scripts(page), ["alert(1)", "let s = \"<script>\";"]);
        let policy = page_policy(page);
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert!(
            policy.contains("script-src 'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI=' '"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
}
