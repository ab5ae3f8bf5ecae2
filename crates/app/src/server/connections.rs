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
//!   (`header_read_timeout`), but only with a timer, which poem never sets. Here every
//!   connection gets one: a client that sends half a head and then nothing, or keeps an idle
//!   keep-alive connection open, is closed after `header_timeout`. A connection on which nothing
//!   at all is read or written for `idle_timeout` is closed too. (A body has a deadline of its
//!   own, in the app: [`super::deadline`].)
//! - **HTTP/1.1 only.** Warden serves plain HTTP behind a TLS-terminating proxy, so HTTP/2
//!   could only come as h2c with prior knowledge, which no proxy in front of Warden needs and
//!   whose connections stay busy on PINGs and other frames that are no request at all. A
//!   connection that opens with HTTP/2's preface is closed at once.
//! - **Connections are capped.** At most `max_connections` are open at once; past that the
//!   accept loop waits (new clients wait in the kernel's backlog) and says so in the log. At most
//!   `max_per_address` are open from one client address (an IPv6 /64 counts as one); past that
//!   the client's new connections are closed at once, so one client cannot take them all.
//!
//! Shutdown stops accepting, asks every connection to finish its request in flight and close,
//! and waits for them up to the shutdown timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
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
    /// Connections open at once from one client address, at most; `None`: no such limit.
    pub max_per_address: Option<usize>,
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
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut last_full_warning: Option<Instant> = None;
    let mut last_refusal_warning: Option<Instant> = None;
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
        let slot = match limits.max_per_address {
            None => None,
            Some(max) => match per_address.take(remote.ip(), max) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!("warden_connections_refused_total").increment(1);
                    if last_refusal_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10))
                    {
                        tracing::warn!(
                            client = %remote.ip(),
                            max_per_address = max,
                            "a client has the most connections one address may open: closing its \
                             new ones"
                        );
                        last_refusal_warning = Some(Instant::now());
                    }
                    // Closed unread, and its permit is free again.
                    continue;
                }
            },
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
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                // Ended, or failed (the client went away): either way it is dropped here, with
                // any request still in flight on it.
                _ = connection => {}
                () = activity.idle_for(limits.idle_timeout) => {
                    tracing::debug!(%remote, "closing an idle connection");
                }
            }
            drop(slot);
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

/// The connections open from each client address.
#[derive(Debug, Default)]
struct PerAddress(std::sync::Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    /// One more connection from `ip`, unless its client has `max` open already.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let client = client(ip);
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            client,
        })
    }
}

/// What counts as one client: an IPv4 address, or an IPv6 /64 (one host's usual share).
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A connection counted against its client; uncounted when dropped.
#[derive(Debug)]
struct AddressSlot {
    table: Arc<PerAddress>,
    client: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(client(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            client(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(client(ip("2001:db8:1:2::1")), client(ip("2001:db8:1:3::1")));
    }

    #[test]
    fn a_client_gets_its_connections_back_as_they_close() {
        let table = Arc::new(PerAddress::default());
        let (one, other) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = table.take(one, 2).unwrap();
        let second = table.take(one, 2).unwrap();
        assert!(table.take(one, 2).is_none());
        assert!(
            table.take(other, 2).is_some(),
            "another client is not counted"
        );
        drop(first);
        let third = table.take(one, 2).unwrap();
        drop((second, third));
        assert!(
            table.0.lock().unwrap().is_empty(),
            "closed clients are forgotten"
        );
    }
}
