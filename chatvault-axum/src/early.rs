//! Responses sent before the request body was read to its end.
//!
//! A handler may answer before it has read the whole request body: 413 for an upload over
//! the limit, 401, 404, 400 on a bad part. hyper then closes the connection after the
//! response (the unread rest of the body stands in front of the next request), and a
//! keep-alive client that was not told so sends its next request on the dead connection
//! (`IncompleteMessage`); a client still sending the body may get a broken pipe or a reset
//! instead of the answer. So, for such a response, the middleware here:
//!
//! 1. reads on, for a short while, what is left of the body (at most
//!    [`DRAIN_BYTES`], for at most [`DRAIN_WAIT`]): when that reaches its end, the
//!    connection stays usable and the response goes out unchanged;
//! 2. otherwise announces the close (`Connection: close`) and, beside the response, keeps
//!    reading and discarding the request body for at most [`LINGER`] before the
//!    connection closes, so that a client still sending has the whole answer rather than
//!    a reset.
//!
//! A request that expects `100-continue` whose body was never read has not been sent by
//! the client: it gets `Connection: close` and is not read at all.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The most of an unread body read before the response to keep the connection open.
pub(crate) const DRAIN_BYTES: usize = 256 * 1024;

/// How long the rest of an unread body may take to arrive before the response.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_millis(50);

/// How long, after the response, the rest of the body is read and discarded.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// The middleware: see the module documentation.
pub(crate) async fn guard(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let (tx, mut rx) = oneshot::channel();
    let tracked = Tracked {
        stream: Some(body.into_data_stream()),
        polled: false,
        unread: Some(tx),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(tracked)))
        .await;
    // Nothing comes back when the body was read to its end (or is still held elsewhere).
    let Ok(Unread { mut stream, polled }) = rx.try_recv() else {
        return response;
    };
    if expects_continue && !polled {
        return closing(response);
    }
    if drain(&mut stream, DRAIN_BYTES, DRAIN_WAIT).await {
        return response;
    }
    // While the rest of the body is held, hyper keeps the connection open and reads it;
    // the response goes out whole at once.
    tokio::spawn(async move {
        drain(&mut stream, usize::MAX, LINGER).await;
    });
    closing(response)
}

/// `response` with `Connection: close`.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads and discards `stream` up to `limit` bytes and `wait`; true when it reached the
/// end of the body.
async fn drain(stream: &mut BodyDataStream, limit: usize, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut read = 0usize;
    while read <= limit {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => read = read.saturating_add(chunk.len()),
            Ok(None) => return true,
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
    false
}

/// The rest of a body the handler let go of before its end.
struct Unread {
    stream: BodyDataStream,
    /// Whether the handler read any of it (so a `100-continue` was sent).
    polled: bool,
}

/// The request body as the handler sees it: hands what is left of it back when dropped
/// before its end.
struct Tracked {
    /// `None` once the body has ended.
    stream: Option<BodyDataStream>,
    polled: bool,
    unread: Option<oneshot::Sender<Unread>>,
}

impl Stream for Tracked {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.polled = true;
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let item = ready!(stream.poll_next_unpin(cx));
        if item.is_none() {
            this.stream = None;
        }
        Poll::Ready(item)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let (Some(stream), Some(unread)) = (self.stream.take(), self.unread.take()) {
            // The middleware may be gone (the request was cancelled): nothing to do then.
            let _ = unread.send(Unread {
                stream,
                polled: self.polled,
            });
        }
    }
}
