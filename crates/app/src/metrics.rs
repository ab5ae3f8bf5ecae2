//! Prometheus metrics (contract section 7), through the `metrics` facade and its Prometheus
//! exporter, rendered by `GET /metrics` in Prometheus's text format.
//!
//! Labels never carry a user id, an email, a token or a raw path: `route` is the path template
//! the router matched (`/posts/{id}`), or `unmatched` for every path it did not, so a scanner
//! cannot make the number of series grow; `method` is one of the standard methods or `other`.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::Method;

use crate::api::routes::RouteTable;

/// The route label of a request the router did not match.
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets for request and hashing-wait durations, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. One per process, as the `metrics` facade
/// has one global recorder; every app in the process (tests make many) shares it.
///
/// # Panics
///
/// If another recorder was installed first, which nothing in Warden does.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route template."
    );
    describe_counter!(
        "warden_logins_total",
        "Token requests, by grant (password, refresh_token, other) and outcome (success or the \
         OAuth2 error code, throttled, unavailable, error)."
    );
    describe_counter!(
        "warden_refresh_reuse_detected_total",
        "Spent refresh tokens presented again; each ended its session."
    );
    describe_counter!(
        "warden_throttled_total",
        "Requests refused with 429, by kind (login, account, registration, mail_request)."
    );
    describe_histogram!(
        "warden_password_hash_wait_seconds",
        Unit::Seconds,
        "Time a password check waited for a hashing thread."
    );
    describe_gauge!(
        "warden_db_pool_connections",
        "Database connections in the pool, by state (idle, in_use)."
    );
    describe_counter!(
        "warden_mail_sent_total",
        "Mails the outbox handed to the mail server, by kind."
    );
    describe_counter!(
        "warden_mail_retries_total",
        "Failed attempts to send a mail that will be tried again, by kind."
    );
    describe_counter!(
        "warden_mail_failed_total",
        "Mails given up after MAIL_MAX_ATTEMPTS failed attempts, by kind."
    );
    describe_counter!(
        "warden_connection_limit_reached_total",
        "Times the server had HTTP_MAX_CONNECTIONS connections open and new ones had to wait."
    );
    describe_counter!(
        "warden_connections_refused_total",
        "Connections closed at once because their client address had \
         HTTP_MAX_CONNECTIONS_PER_ADDRESS open."
    );
}

/// The `method` label: a standard method, or `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `route` label of the pattern the router matched: the route's template as the OpenAPI
/// document spells it (`/posts/{id}`; the router spells it `/posts/:param0`), or [`UNMATCHED`]
/// for anything that is not one of the app's routes.
pub fn route_label(pattern: &str) -> String {
    RouteTable::app()
        .label(pattern)
        .unwrap_or(UNMATCHED)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_spelled_as_the_document_spells_them() {
        assert_eq!(route_label("/posts/:param0"), "/posts/{id}");
        assert_eq!(route_label("/users/me"), "/users/me");
        assert_eq!(route_label("/metrics"), "/metrics");
    }

    #[test]
    fn anything_else_is_unmatched() {
        assert_eq!(route_label(""), UNMATCHED);
        assert_eq!(route_label("/"), UNMATCHED);
        assert_eq!(route_label("/no/such/ann@example.com"), UNMATCHED);
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
