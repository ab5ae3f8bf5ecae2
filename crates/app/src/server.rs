//! Wiring: the app state, the route tree with its middleware, and the server loop with graceful
//! shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::TimeDelta;
use poem::http::HeaderValue;
use poem::http::{StatusCode, header};
use poem::middleware::{NormalizePath, TrailingSlash};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use tokio::io::AsyncReadExt;
use tracing::Instrument;
use warden_adapters::{
    Argon2Hasher, JwtConfig, JwtTokens, Sha256RefreshTokens, Store, StoreOptions,
};
use warden_domain::services::{
    AdminService, AuthPorts, AuthService, Lifetimes, PostService, UserService,
};

use crate::api;
use crate::api::error::{AllowedMethods, render_error};
use crate::config::{Config, SecretSource, resolve_jwt_keys};
use crate::throttle::Throttle;

pub mod connections;

/// Everything a request handler may need.
#[derive(Debug, Clone)]
pub struct AppState {
    pub auth: AuthService,
    pub users: UserService,
    pub posts: PostService,
    pub admin: AdminService,
    /// The token keys, for publishing the public ones.
    pub tokens: Arc<JwtTokens>,
    pub throttle: Arc<Throttle>,
    pub store: Store,
}

/// The largest request body accepted (contract section 0).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const REQUEST_ID: &str = "x-request-id";

impl AppState {
    /// Builds the services on `store` with the real hasher and token signer.
    pub fn new(store: Store, config: &Config) -> anyhow::Result<Self> {
        let (keys, source) = resolve_jwt_keys(config)?;
        match source {
            SecretSource::Configured => {}
            SecretSource::KeyFile(path) => {
                tracing::info!(path = %path.display(), "signing tokens with EdDSA");
            }
            SecretSource::File {
                path,
                created: true,
            } => tracing::info!(
                path = %path.display(),
                "generated a JWT signing secret; set JWT_SECRET to use your own"
            ),
            SecretSource::File {
                path,
                created: false,
            } => {
                tracing::info!(path = %path.display(), "using the JWT signing secret kept in a file");
            }
            SecretSource::Ephemeral => tracing::warn!(
                "in-memory database and no JWT_SECRET: tokens will not survive a restart"
            ),
        }
        let tokens = Arc::new(JwtTokens::new(&JwtConfig {
            keys,
            issuer: config.tokens.jwt_issuer.clone(),
            audience: config.tokens.jwt_audience.clone(),
            access_token_lifetime: config.access_token_lifetime(),
            leeway: Duration::from_secs(config.tokens.jwt_leeway_seconds),
        })?);
        let hasher = Arc::new(Argon2Hasher::new(
            config.password_hash_concurrency(),
            config.password_hash_queue(),
        )?);
        let repository = Arc::new(store.clone());
        let auth = AuthService::new(
            AuthPorts {
                users: repository.clone(),
                sessions: repository.clone(),
                hasher: hasher.clone(),
                issuer: tokens.clone(),
                verifier: tokens.clone(),
                refresh_tokens: Arc::new(Sha256RefreshTokens),
            },
            Lifetimes {
                session: TimeDelta::days(config.tokens.session_lifetime_days.into()),
                refresh_token: TimeDelta::days(config.tokens.refresh_token_expire_days.into()),
            },
        );
        Ok(Self {
            auth,
            users: UserService::new(repository.clone(), repository.clone(), hasher),
            posts: PostService::new(repository.clone(), repository.clone()),
            admin: AdminService::new(repository.clone(), repository),
            tokens,
            throttle: Arc::new(Throttle::new(&config.throttle())),
            store,
        })
    }
}

/// The whole HTTP application: the API, `/openapi.json`, Swagger UI at `/docs`, and the
/// middleware every request goes through.
pub fn app(state: AppState) -> impl Endpoint<Output = Response> {
    let service = api::service();
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let allowed = Arc::new(AllowedMethods::from_openapi(&service.spec()));
    Route::new()
        .at("/openapi.json", poem::get(spec))
        .nest("/docs", poem::get(docs))
        .nest("/", service)
        .around(limit_body)
        // `/users/` is `/users`, as with FastAPI's redirect but without the round trip.
        .with(NormalizePath::new(TrailingSlash::Trim))
        .data(state)
        .around(move |next, req| {
            let allowed = Arc::clone(&allowed);
            async move {
                let path = req.uri().path().to_owned();
                Ok(match next.call(req).await {
                    Ok(response) => response,
                    Err(err) => render_error(err, &path, &allowed),
                })
            }
        })
        .around(observe)
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
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request served"
        );
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// Connects to the database, migrates it, and serves until SIGINT or SIGTERM; then stops
/// accepting connections and lets in-flight requests finish (up to the shutdown timeout).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(
        config.database_url(),
        &StoreOptions {
            max_connections: config.database.max_connections,
            ..StoreOptions::default()
        },
    )
    .await?;
    tracing::info!(backend = ?store.backend(), "database ready");
    let state = AppState::new(store.clone(), &config)?;
    let throttle = Arc::clone(&state.throttle);
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            throttle.prune();
        }
    });

    let server = &config.server;
    let listener = tokio::net::TcpListener::bind(server.addr)
        .await
        .with_context(|| format!("cannot listen on {}", server.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(url = %format!("http://{addr}/docs"), "listening; API docs and Swagger UI");
    let limits = connections::ConnectionLimits {
        header_timeout: Duration::from_secs(server.http_header_timeout_seconds),
        idle_timeout: Duration::from_secs(server.http_idle_timeout_seconds),
        max_connections: usize::try_from(server.http_max_connections).unwrap_or(usize::MAX),
        shutdown_timeout: Duration::from_secs(server.shutdown_timeout_seconds),
    };
    connections::serve(listener, app(state), limits, shutdown_signal())
        .await
        .context("server failed")?;
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
