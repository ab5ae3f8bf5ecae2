//! CORS (contract section 7): lets browser front ends on the origins in
//! `CORS_ALLOWED_ORIGINS` call the API. Off (no CORS headers at all) when the list is empty.
//!
//! Not poem's `Cors` middleware, because it refuses every request that carries an unlisted
//! `Origin` with 403, and browsers send `Origin` on their own origin's POSTs too: Swagger UI on
//! Warden's own address would stop working as soon as CORS was turned on. The contract asks
//! only that other origins get no `Access-Control-Allow-Origin`, which is what the browser
//! enforces; this does that, and answers preflights with the methods the path really has.

use std::sync::Arc;

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use crate::api::routes::RouteTable;

/// Headers a cross-origin request may send: its credentials and body type, the proof of a
/// DPoP-bound token, its own request id, and the W3C trace context it continues.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, DPoP, X-Request-Id, traceparent";
/// Headers a cross-origin caller may read besides the simple ones: a list's total, how long to
/// wait after a 429 or 503, the request id to quote to an operator, why a token was refused,
/// and the next DPoP nonce.
const EXPOSE_HEADERS: &str =
    "X-Total-Count, Retry-After, X-Request-Id, WWW-Authenticate, DPoP-Nonce";
/// How long a browser may cache a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// The origins allowed, as `scheme://host[:port]`.
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins(Vec<HeaderValue>);

impl CorsOrigins {
    /// The list `CORS_ALLOWED_ORIGINS` gives.
    ///
    /// # Errors
    ///
    /// An entry that is not an origin: a scheme (`http` or `https`), `://` and a host, with an
    /// optional port and nothing after it.
    pub fn new(origins: &[String]) -> anyhow::Result<Self> {
        origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                let rest = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"));
                let valid = rest.is_some_and(|host| {
                    !host.is_empty()
                        && !host.contains(['/', '?', '#', '@', ' '])
                        && host.is_ascii()
                });
                anyhow::ensure!(
                    valid,
                    "CORS_ALLOWED_ORIGINS: {origin:?} is not an origin (like https://app.example.com)"
                );
                Ok(HeaderValue::from_str(origin)?)
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.0.iter().any(|allowed| allowed == origin)
    }
}

/// Adds CORS to `next` for `origins`, with preflights answered with the methods `routes` gives
/// the path.
pub async fn cors<E: Endpoint>(
    next: Arc<E>,
    req: Request,
    origins: Arc<CorsOrigins>,
    routes: &'static RouteTable,
) -> poem::Result<Response> {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let allows = origins.allows(&origin);
    if preflight {
        let methods = routes.allow(req.uri().path().trim_end_matches('/'));
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let (true, Some(methods)) = (allows, methods) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if let Ok(methods) = HeaderValue::from_str(methods) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
            }
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
        return Ok(response);
    }
    let mut response = next.call(req).await.map(IntoResponse::into_response)?;
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if allows {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let origins = CorsOrigins::new(&[
            "https://app.example.com".into(),
            " http://localhost:3000 ".into(),
            String::new(),
        ])
        .unwrap();
        assert!(origins.allows(&HeaderValue::from_static("http://localhost:3000")));
        assert!(!origins.allows(&HeaderValue::from_static("http://localhost:3001")));
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "*",
            "ftp://x",
            "https://",
        ] {
            assert!(CorsOrigins::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
