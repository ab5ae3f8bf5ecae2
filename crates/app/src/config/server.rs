//! Settings of the HTTP server: its address, its connection limits and deadlines, CORS, the
//! public URL, and logs.

use std::net::SocketAddr;

use clap::Args;

use super::LogFormat;

/// The HTTP server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerConfig {
    /// The address to listen on.
    #[arg(long = "addr", env = "WARDEN_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,

    /// A client has this long to send a request head, in seconds, counted from when the server
    /// is ready for one (an idle keep-alive connection counts too); then the connection is
    /// closed, so half-sent requests cannot hold connections.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_header_timeout_seconds: u64,

    /// A request's body must have arrived this long after its head, in seconds; else the
    /// request is answered 408 and its connection closed, so that a body trickled a byte at a
    /// time cannot hold a connection.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_body_timeout_seconds: u64,

    /// A connection on which nothing is sent or received for this long is closed, in seconds
    /// (a client that does not read its answer, say).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_idle_timeout_seconds: u64,

    /// Connections open at once, at most. Past it, new connections wait (in the kernel's
    /// backlog) until others close, and the log says so. Keep it below the process's limit of
    /// open files (`ulimit -n`), which also counts database connections.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,

    /// Connections open at once from one client address (for IPv6, one /64), at most; past it
    /// the client's new connections are closed at once, so that one client cannot take every
    /// connection. 0 turns it off. Not applied with `TRUSTED_PROXY_HOPS` set: every connection
    /// then comes from a proxy, which should bound its clients' connections itself.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 100)]
    pub http_max_connections_per_address: u32,

    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub shutdown_timeout_seconds: u64,

    /// After SIGTERM or SIGINT, how long to go on serving, in seconds, while `/health/ready`
    /// answers 503, before the listener closes; behind a load balancer, longer than its health
    /// checks take to take the instance out, so that no request is sent to a closed port. A
    /// second signal cuts it short. Default 0: close at once.
    #[arg(long, env = "SHUTDOWN_DELAY_SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_delay_seconds: u64,

    /// Origins whose pages may call the API from a browser (CORS), comma-separated, like
    /// `https://app.example.com,http://localhost:3000`. Empty, the default: no CORS headers.
    #[arg(
        long = "cors-allowed-origins",
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allowed_origins: Vec<String>,

    /// The URL clients reach Warden at, like `https://auth.example.com` (no trailing slash): the
    /// base of the absolute endpoint URLs in `/.well-known/oauth-authorization-server`. Unset,
    /// they are built from each request's `Host` header, over http.
    #[arg(long, env = "PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,

    /// Serve `/metrics` (Prometheus) on this address only, for example `127.0.0.1:9100`, so that
    /// it can stay off the public network. Unset: `/metrics` is served on `WARDEN_ADDR`.
    #[arg(long = "metrics-addr", env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log line format. The level is set with `RUST_LOG` (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A `PUBLIC_URL`: http or https, a host, no query or fragment; a trailing slash is dropped.
fn public_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim_end_matches('/');
    let uri: poem::http::Uri = trimmed.parse().map_err(|err| format!("not a URL: {err}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() || uri.query().is_some() || raw.contains('#') {
        return Err(
            "must be an http:// or https:// URL with a host, like https://auth.example.com"
                .to_owned(),
        );
    }
    Ok(trimmed.to_owned())
}
