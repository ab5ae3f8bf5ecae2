//! Wiring: the app state, the route tree with its middleware, and the server loop with graceful
//! shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use poem::http::HeaderValue;
use poem::http::{StatusCode, header};
use poem::middleware::{NormalizePath, TrailingSlash};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, PathPattern, Request, Response, Route};
use tokio::io::AsyncReadExt;
use tracing::Instrument;
use warden_adapters::Store;

use crate::api;
use crate::api::error::render_error;
use crate::api::routes::{DOCS_PATH, METRICS_PATH, OPENAPI_PATH, RouteTable};
use crate::api::state::AppState;
use crate::config::Config;
use crate::cors::cors;
use crate::security_headers::{DocsPolicies, security_headers};

pub mod background;
pub mod connections;
pub mod deadline;

/// The largest request body accepted (contract section 0).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const REQUEST_ID: &str = "x-request-id";

/// The whole HTTP application: the API, `/openapi.json`, Swagger UI at `/docs`, and the
/// middleware every request goes through.
pub fn app(state: AppState) -> impl Endpoint<Output = Response> {
    let service = api::service();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    // Built now rather than at the first request.
    RouteTable::app();
    let origins = Arc::clone(&state.cors);
    let draining = Arc::clone(&state.draining);
    let body_timeout = state.body_timeout;
    let docs_policies = Arc::new(DocsPolicies::default());
    let mut routes = Route::new()
        .at(OPENAPI_PATH, poem::get(spec))
        .nest(DOCS_PATH, poem::get(docs));
    if state.metrics_with_api {
        routes = routes.at(METRICS_PATH, poem::get(metrics_endpoint));
    }
    routes
        .nest("/", service)
        .around(limit_body)
        .around(move |next, req| deadline::body_deadline(next, req, body_timeout))
        // `/users/` is `/users`, as with FastAPI's redirect but without the round trip.
        .with(NormalizePath::new(TrailingSlash::Trim))
        .data(state)
        .around(move |next, req| {
            async move {
                let path = req.uri().path().to_owned();
                Ok(match next.call(req).await {
                    Ok(response) => response,
                    Err(err) => {
                        // The route it matched, for the metrics' `route` label.
                        let pattern = err.data::<PathPattern>().cloned();
                        let mut response = render_error(err, &path, RouteTable::app());
                        if let Some(pattern) = pattern {
                            response.set_data(pattern);
                        }
                        response
                    }
                })
            }
        })
        // Outside the error rendering, so that a cross-origin caller can read errors too.
        .around(move |next, req| {
            let origins = Arc::clone(&origins);
            async move {
                if origins.is_empty() {
                    next.call(req).await
                } else {
                    cors(next, req, origins, RouteTable::app()).await
                }
            }
        })
        .around(observe)
        .around(move |next, req| {
            let draining = Arc::clone(&draining);
            async move {
                let mut response = next.call(req).await?;
                // While draining, clients open their next request elsewhere.
                if draining.is_draining() {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(response)
            }
        })
        // Outermost: on every answer, errors and CORS preflights included.
        .around(move |next, req| security_headers(next, req, Arc::clone(&docs_policies)))
}

/// Refuses a body declared larger than [`MAX_BODY_BYTES`] with 413, and caps a body of unknown
/// length (chunked) at that size when it is read, so that no request can make the server buffer
/// more. (poem's `SizeLimit` would also refuse every request without a `Content-Length`, GETs
/// included.)
async fn limit_body<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(poem::Error::from_string(
            format!(
                "the request body is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ));
    }
    if declared.is_none() {
        let body = req
            .take_body()
            .into_async_read()
            .take(MAX_BODY_BYTES as u64);
        req.set_body(Body::from_async_read(body));
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Gives each request an id (the caller's `x-request-id` when it is sensible, else a fresh
/// one), runs it inside a tracing span that carries the id, logs its outcome, and returns the id
/// in the response.
async fn observe<E: Endpoint>(next: Arc<E>, req: Request) -> poem::Result<Response> {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let method = crate::metrics::method_label(req.method());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    async move {
        let started = Instant::now();
        let mut response = match next.call(req).await {
            Ok(response) => response.into_response(),
            Err(err) => err.into_response(),
        };
        let elapsed = started.elapsed();
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request served"
        );
        let route = response.data::<PathPattern>().map_or_else(
            || crate::metrics::UNMATCHED.to_owned(),
            |pattern| crate::metrics::route_label(&pattern.0),
        );
        let status = response.status().as_u16().to_string();
        metrics::counter!(
            "http_requests_total",
            "method" => method,
            "route" => route.clone(),
            "status" => status
        )
        .increment(1);
        metrics::histogram!(
            "http_request_duration_seconds",
            "method" => method,
            "route" => route
        )
        .record(elapsed);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// `GET /metrics`: Prometheus's text format, with the pool's connections as they are now.
#[poem::handler]
fn metrics_endpoint(state: poem::web::Data<&AppState>) -> Response {
    let (open, idle) = state.store.pool_connections();
    metrics::gauge!("warden_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("warden_db_pool_connections", "state" => "in_use")
        .set(f64::from(open.saturating_sub(idle)));
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::handle().render())
}

/// Connects to the database, migrates it, and serves until SIGINT or SIGTERM; then stops
/// accepting connections and lets in-flight requests finish (up to the shutdown timeout).
pub async fn serve(config: Config, migrate: bool) -> anyhow::Result<()> {
    let store = Store::open(config.database_url(), &config.database.store_options()).await?;
    // Behind a transaction pooler migrations cannot run (they need a session of their own):
    // serving then checks the schema as --no-migrate does.
    if migrate && !config.database.transaction_pooling {
        store.migrate().await?;
    } else {
        let pending = store.pending_migrations().await?;
        let remedy = if config.database.transaction_pooling {
            "run `warden migrate` with a DATABASE_URL that reaches PostgreSQL directly (not \
             through the transaction pooler) first"
        } else {
            "run `warden migrate` first, or start without --no-migrate"
        };
        anyhow::ensure!(
            pending.is_empty(),
            "the database's schema is behind this build: {} not applied; {remedy}",
            pending.join(", ")
        );
    }
    tracing::info!(backend = ?store.backend(), "database ready");
    let state = AppState::new(store.clone(), &config)?;
    background::spawn(&state);

    let server = &config.server;
    let listener = tokio::net::TcpListener::bind(server.addr)
        .await
        .with_context(|| format!("cannot listen on {}", server.addr))?;
    let addr = listener.local_addr()?;
    let docs = format!("http://{addr}{DOCS_PATH}");
    tracing::info!(url = %docs, "listening; API docs and Swagger UI");
    let limits = connections::ConnectionLimits {
        header_timeout: Duration::from_secs(server.http_header_timeout_seconds),
        idle_timeout: Duration::from_secs(server.http_idle_timeout_seconds),
        max_connections: usize::try_from(server.http_max_connections).unwrap_or(usize::MAX),
        // Behind proxies every connection comes from one of them: they bound their clients.
        max_per_address: match server.http_max_connections_per_address {
            0 => None,
            _ if config.throttling.trusted_proxy_hops > 0 => None,
            max => Some(usize::try_from(max).unwrap_or(usize::MAX)),
        },
        shutdown_timeout: Duration::from_secs(server.shutdown_timeout_seconds),
    };
    // With METRICS_ADDR, /metrics has a listener of its own, stopped when the API's stops.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(metrics_addr) = server.metrics_addr {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
        let url = format!("http://{}{METRICS_PATH}", listener.local_addr()?);
        tracing::info!(url = %url, "metrics");
        let endpoint = Route::new()
            .at(METRICS_PATH, poem::get(metrics_endpoint))
            .data(state.clone())
            .around(|next, req| security_headers(next, req, Arc::default()));
        tokio::spawn(connections::serve(listener, endpoint, limits, async move {
            let _ = metrics_stopped.await;
        }));
    }
    let draining = Arc::clone(&state.draining);
    let delay = Duration::from_secs(server.shutdown_delay_seconds);
    let shutdown = async move {
        shutdown_signal().await;
        draining.begin();
        if !delay.is_zero() {
            tracing::info!(
                seconds = delay.as_secs(),
                "draining: /health/ready answers 503 while requests are still served"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown_signal() => tracing::info!("second signal: closing now"),
            }
        }
    };
    connections::serve(listener, app(state), limits, shutdown)
        .await
        .context("server failed")?;
    let _ = stop_metrics.send(());
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (what `docker stop`, systemd and Kubernetes
/// send).
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
