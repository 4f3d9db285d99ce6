//! One connection: served by hyper, watched by its own clock, cut when it is overdue.
//!
//! hyper's own header timeout also runs through keep-alive idleness, so it cannot tell a slow
//! head from an idle connection; the clock here keeps the two apart (see `activity`).

use super::activity::{Activity, Overdue, Timeouts};
use super::RequestStarted;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The connection's clock, shared by its socket, its requests and its watchdog.
struct Clock {
    activity: Mutex<Activity>,
    /// Woken when a deadline may have moved earlier.
    moved: Notify,
}

impl Clock {
    fn with<R>(&self, f: impl FnOnce(&mut Activity) -> R) -> R {
        let mut activity = self.activity.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut activity)
    }

    fn read(&self) {
        if self.with(|a| a.read(Instant::now())) {
            self.moved.notify_one();
        }
    }

    fn wrote(&self) {
        self.with(|a| a.wrote(Instant::now()));
    }

    fn answered(&self) {
        if self.with(|a| a.answered(Instant::now())) {
            self.moved.notify_one();
        }
    }
}

/// Serves `stream` until the client or hyper ends it, or until the clock says it is overdue.
/// With `tls`, the handshake comes first and is bounded like a request head. `stop` turns
/// into a graceful shutdown: the request in flight is answered, then the connection closes.
/// Returns why it was cut, if it was.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    http: &http1::Builder,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
) -> Option<Overdue> {
    let clock = Arc::new(Clock {
        activity: Mutex::new(Activity::new(Instant::now())),
        moved: Notify::new(),
    });
    // The clock watches the socket's raw bytes, so handshake traffic counts as activity too.
    let watched = Watched {
        stream,
        clock: clock.clone(),
    };
    let service = ConnService {
        router,
        peer,
        clock: clock.clone(),
    };
    let Some(tls) = tls else {
        return drive(
            TokioIo::new(watched),
            service,
            peer,
            http,
            &clock,
            timeouts,
            stop,
        )
        .await;
    };
    let secured = match tokio::time::timeout(timeouts.request, tls.accept(watched)).await {
        Ok(Ok(secured)) => secured,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake did not finish in time; connection cut");
            return Some(Overdue::Head);
        }
    };
    // The handshake's bytes began no request: from here the connection is idle.
    clock.with(|a| a.secured(Instant::now()));
    drive(
        TokioIo::new(secured),
        service,
        peer,
        http,
        &clock,
        timeouts,
        stop,
    )
    .await
}

/// Runs hyper on `io` under the connection's clock.
async fn drive<I>(
    io: TokioIo<I>,
    service: ConnService,
    peer: SocketAddr,
    http: &http1::Builder,
    clock: &Clock,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) -> Option<Overdue>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let (deadline, _) = clock.with(|a| a.deadline(&timeouts));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return None;
            }
            () = tokio::time::sleep_until(deadline) => {
                if let Some(why) = clock.with(|a| a.overdue(Instant::now(), &timeouts)) {
                    // Dropping the connection closes the socket; no answer is owed to a
                    // client that has not finished asking, or has stopped listening.
                    tracing::debug!(%peer, reason = why.as_str(), "connection cut");
                    return Some(why);
                }
            }
            () = clock.moved.notified() => {}
            _ = stop.wait_for(|stop| *stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The socket, reporting traffic to the clock.
struct Watched {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.read();
        }
        poll
    }
}

impl Watched {
    fn count_written(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.wrote();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.count_written(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.count_written(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The router, seen from one connection: it learns the peer address and when the request
/// began, and tells the clock when the answer is finished.
struct ConnService {
    router: Router,
    peer: SocketAddr,
    clock: Arc<Clock>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let started = self.clock.with(|a| a.dispatched(Instant::now()));
        let in_flight = InFlight(self.clock.clone());
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        request.extensions_mut().insert(RequestStarted(started));
        let router = self.router.clone();
        Box::pin(async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| Answer {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// Marks the request answered when dropped: after hyper has written the last of the
/// response, or when the request is abandoned.
struct InFlight(Arc<Clock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.answered();
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub(super) struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
