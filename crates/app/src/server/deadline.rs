//! The body deadline: a request's body must have arrived within `HTTP_BODY_TIMEOUT_SECONDS` of
//! its head, or the request is answered 408 and its connection closed.
//!
//! The connection layer bounds the head (`HTTP_HEADER_TIMEOUT_SECONDS`) and silence
//! (`HTTP_IDLE_TIMEOUT_SECONDS`), but a body trickled a byte at a time is never silent: without
//! this, one byte every minute held a connection for as long as its `Content-Length` lasted
//! (64 KiB: 44 days). Once the handler has read the whole body, or let it go unread, the
//! deadline no longer applies: the work that follows (a login waiting for a hashing thread, say)
//! takes as long as it takes.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::StatusCode;
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, ReadBuf};

/// Calls `next` with `req`, unless `req`'s body is still arriving `timeout` after now: then
/// the request is dropped, with whatever work it was doing, answered 408, and its connection
/// closed.
///
/// # Errors
///
/// 408 when the body is late; otherwise whatever `next` answers.
pub async fn body_deadline<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    timeout: Duration,
) -> poem::Result<Response> {
    let body = req.take_body();
    if body.is_empty() {
        req.set_body(body);
        return next.call(req).await.map(IntoResponse::into_response);
    }
    let arrived = Arc::new(AtomicBool::new(false));
    req.set_body(Body::from_async_read(Arrival {
        inner: body.into_async_read(),
        arrived: Arc::clone(&arrived),
    }));
    let late = async {
        tokio::time::sleep(timeout).await;
        if arrived.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        response = next.call(req) => response.map(IntoResponse::into_response),
        () = late => {
            tracing::info!(
                seconds = timeout.as_secs(),
                "closing a request whose body did not arrive in time"
            );
            // Rendered as every error is (in the token endpoints' shape at theirs). hyper closes
            // the connection after it, as the rest of the body is not read.
            Err(poem::Error::from_string(
                format!("the request body did not arrive within {} s", timeout.as_secs()),
                StatusCode::REQUEST_TIMEOUT,
            ))
        }
    }
}

/// A body that says when it has been read to its end, or dropped.
struct Arrival<R> {
    inner: R,
    arrived: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Arrival<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.arrived.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<R> Drop for Arrival<R> {
    fn drop(&mut self) {
        self.arrived.store(true, Ordering::Relaxed);
    }
}
