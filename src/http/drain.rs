//! Lingering reads for refused requests. A request is often refused before its body has
//! arrived: a raw upload streams (401, 403, 413, 422 on its header), and any request may be
//! refused before its body is read (429 per IP, 401 on a malformed signature header).
//! Dropping the rest unread makes the kernel reset the connection, and a client still sending
//! then sees "broken pipe" or "connection reset" instead of the answer. So the rest of a
//! refused body is read and thrown away in the background, within bounds, while the answer
//! goes out.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// The most of a refused body that is still read. A body with more left (by its declared
/// length) is dropped at once: its client sees the connection reset, which is cheaper than
/// receiving gigabytes to answer no. Clients sending `Expect: 100-continue` are told without
/// sending anything.
pub const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// A request body that, when dropped before its end, reads what is left in a background task
/// (at most [`DRAIN_MAX`] bytes, and no longer than `until` allows).
struct DrainOnDrop {
    inner: Option<Body>,
    declared: Option<u64>,
    seen: u64,
    ended: bool,
    polled: bool,
    expects_continue: bool,
    until: Until,
}

/// How long the rest of a refused body is read for: until the request's own deadline, or, for
/// a request that has none (a streamed upload), one stall limit after the refusal. A request
/// answered for running out of time is therefore cut at once, as the time limit means.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    Deadline(Instant),
    StallAfterRefusal(Duration),
}

/// `request` with its body, if it has one, read to its end even when it is refused unread.
pub fn on_refusal(request: Request, until: Until) -> Request {
    if http_body::Body::is_end_stream(request.body()) {
        return request;
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(DrainOnDrop::new(&parts.headers, body, until));
    Request::from_parts(parts, body)
}

impl DrainOnDrop {
    fn new(headers: &HeaderMap, body: Body, until: Until) -> Self {
        Self {
            inner: Some(body),
            declared: super::body::declared_length(headers),
            seen: 0,
            ended: false,
            polled: false,
            expects_continue: headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
            until,
        }
    }

    /// Whether reading the rest is both needed and affordable.
    fn worth_draining(&self) -> bool {
        if self.ended {
            return false;
        }
        // Never polled: the client still waits for "100 Continue" and sends nothing more.
        if self.expects_continue && !self.polled {
            return false;
        }
        match self.declared {
            Some(declared) => declared.saturating_sub(self.seen) <= DRAIN_MAX,
            None => true,
        }
    }
}

impl http_body::Body for DrainOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.polled = true;
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                }
            }
            // A failed body (the client went away, or sent a malformed chunk) has nothing
            // left worth reading.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        if !self.worth_draining() {
            return;
        }
        let deadline = match self.until {
            Until::Deadline(deadline) => deadline,
            Until::StallAfterRefusal(stall) => Instant::now() + stall,
        };
        if deadline <= Instant::now() {
            return;
        }
        let (Some(body), Ok(runtime)) = (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(tokio::time::timeout_at(deadline, discard(body)));
    }
}

/// Reads `body` to its end, or until it fails or passes [`DRAIN_MAX`].
async fn discard(body: Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while read <= DRAIN_MAX {
        match stream.next().await {
            Some(Ok(bytes)) => read = read.saturating_add(bytes.len() as u64),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use futures_util::StreamExt;
    use http_body::Body as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const STALL: Duration = Duration::from_secs(5);
    const UNTIL: Until = Until::StallAfterRefusal(STALL);

    /// A body of `chunks` chunks of 1 KiB, counting how many were pulled; pulling the last
    /// one completes `finished`.
    fn counted(chunks: usize) -> (Body, Arc<AtomicUsize>, tokio::sync::oneshot::Receiver<()>) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut done = Some(done);
        let stream = futures_util::stream::iter(0..chunks).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            if i + 1 == chunks {
                if let Some(done) = done.take() {
                    let _ = done.send(());
                }
            }
            Ok::<_, std::io::Error>(vec![0u8; 1024])
        });
        (Body::from_stream(stream), pulled, finished)
    }

    fn headers(length: Option<u64>, expect: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(len) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        if expect {
            headers.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        }
        headers
    }

    #[tokio::test]
    async fn a_body_dropped_early_is_read_to_its_end() {
        let (body, pulled, finished) = counted(100);
        let wrapped = DrainOnDrop::new(&headers(Some(100 * 1024), false), body, UNTIL);
        let mut stream = Body::new(wrapped).into_data_stream();
        assert!(stream.next().await.is_some());
        drop(stream);
        tokio::time::timeout(STALL, finished)
            .await
            .expect("the rest of the body was not read")
            .unwrap();
        assert_eq!(pulled.load(Ordering::SeqCst), 100);
    }

    #[test]
    fn only_an_unfinished_affordable_body_is_drained() {
        let (body, _, _) = counted(1);
        let drain =
            |length, expect| DrainOnDrop::new(&headers(length, expect), Body::empty(), UNTIL);
        assert!(drain(Some(DRAIN_MAX), false).worth_draining());
        assert!(drain(None, false).worth_draining());
        // More left than the cap: dropped unread.
        assert!(!drain(Some(DRAIN_MAX + 1), false).worth_draining());
        // Waiting for "100 Continue", the client has sent nothing.
        assert!(!drain(Some(1024), true).worth_draining());
        let mut polled = drain(Some(DRAIN_MAX + 1), true);
        polled.polled = true;
        polled.seen = 1;
        assert!(polled.worth_draining(), "a continued body is being sent");
        let mut ended = DrainOnDrop::new(&headers(None, false), body, UNTIL);
        ended.ended = true;
        assert!(!ended.worth_draining());
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_marked_ended() {
        let (body, pulled, _) = counted(3);
        let mut wrapped = DrainOnDrop::new(&headers(None, false), body, UNTIL);
        let mut frames = 0;
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut wrapped).poll_frame(cx)).await
        {
            assert!(frame.is_ok());
            frames += 1;
        }
        assert_eq!((frames, pulled.load(Ordering::SeqCst)), (3, 3));
        assert!(!wrapped.worth_draining());
    }
}
