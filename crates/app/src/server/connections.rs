//! The connection layer: accepts TCP connections and serves the app on each with hyper, with
//! the limits poem's own server loop does not give.
//!
//! Poem's `Server` is not used because of three things it cannot do:
//!
//! - **Hang-ups cancel work.** When a client goes away mid-request, hyper reports the closed
//!   connection; poem's loop then polls the same connection again to shut it down gracefully,
//!   which polls the in-flight request to completion, so a hung-up login still hashes its
//!   password. Here a connection that ends is dropped, and its request with it.
//! - **Slow clients are bounded.** hyper can time out a request head that arrives too slowly
//!   (`header_read_timeout`), but only with a timer, which poem never sets. Here every HTTP/1
//!   connection gets one: a client that sends half a head and then nothing, or keeps an idle
//!   keep-alive connection open, is closed after `header_timeout`. A connection on which nothing
//!   at all is read or written for `idle_timeout` (a trickled body, say) is closed too.
//! - **Connections are capped.** At most `max_connections` are open at once; past that the
//!   accept loop waits (new clients wait in the kernel's backlog) and says so in the log.
//!
//! Shutdown stops accepting, asks every connection to finish its request in flight and close,
//! and waits for them up to the shutdown timeout.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Request};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The limits of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request head, counted from when the server is
    /// ready to read one (so an idle keep-alive connection counts too).
    pub header_timeout: Duration,
    /// A connection on which nothing is read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once, at most.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module's doc).
///
/// # Errors
///
/// The listener has no local address.
pub async fn serve(
    listener: TcpListener,
    app: impl Endpoint + 'static,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = Arc::new(app.map_to_response().boxed());
    let local = listener.local_addr()?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut last_full_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let full = permits.available_permits() == 0;
        if full {
            metrics::counter!("warden_connection_limit_reached_total").increment(1);
        }
        if full && last_full_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until others close"
            );
            last_full_warning = Some(Instant::now());
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let app = Arc::clone(&app);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = Arc::clone(&app);
            let addresses = (
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(remote)),
            );
            async move {
                let request = Request::from((request, addresses.0, addresses.1, Scheme::HTTP));
                Ok::<hyper::Response<_>, Infallible>(app.get_response(request).await.into())
            }
        });
        let builder = Arc::clone(&builder);
        let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            tokio::select! {
                // Ended, or failed (the client went away): either way it is dropped here, with
                // any request still in flight on it.
                _ = connection => {}
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(%remote, "closing an idle connection");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: finishing in-flight requests"
    );
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout: closing connections with requests still in flight");
    }
    Ok(())
}

/// When a connection last read or wrote anything.
struct Activity {
    started: Instant,
    /// Milliseconds since `started`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has happened for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A TCP stream that records its activity.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
