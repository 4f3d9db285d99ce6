//! Serving HTTP/1 on a listener with our own accept loop: accept only while under the
//! connection limit, bound every connection's time and request head, drain on shutdown.
//!
//! `axum::serve` bounds none of these, so a client trickling its head, or a thousand idle
//! ones, could hold connections (and file descriptors) for ever.

mod activity;
mod connection;
mod descriptors;
mod tls;

use crate::metrics::Metrics;
use axum::Router;
use hyper::server::conn::http1;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

pub use activity::Timeouts;
pub use descriptors::check_descriptor_limit;
#[cfg(unix)]
pub use tls::reload_on_hangup;
pub use tls::Tls;

/// Largest request head (request line, so the URI too, and headers), in bytes. hyper answers
/// 431 above it, as soon as that much has arrived, and closes the connection.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request; more get 431. This is hyper's default, which it keeps
/// on the stack; configuring it explicitly would allocate per request.
pub const MAX_HEADERS: usize = 100;
/// Open connections on the metrics listener: its scrapers are few, and a flood of the API
/// must not take their descriptors, nor theirs the API's.
pub const METRICS_MAX_CONNECTIONS: usize = 32;
/// The pause after an accept error such as EMFILE (out of descriptors), so that the loop does
/// not spin while connections close and free some.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// When the request's first byte arrived, as a request extension: the time limit counts from
/// there, not from the parsed head, so a slow head leaves less time for the rest.
#[derive(Debug, Clone, Copy)]
pub struct RequestStarted(pub Instant);

/// How one listener serves.
pub struct Settings {
    /// The `listener` label of the connection metrics.
    pub name: &'static str,
    pub max_connections: usize,
    pub timeouts: Timeouts,
    pub metrics: Arc<Metrics>,
    /// Set: the listener speaks only TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves `router` on `listener` until `stop` turns true; then stops accepting, lets every
/// connection finish the request it is serving, and returns when all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.max_header_size(MAX_HEAD_BYTES)
        // The connection's clock bounds the head, apart from idleness, which hyper's own
        // header timeout would lump together with it.
        .header_read_timeout(None);
    let http = Arc::new(http);
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(
        settings.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    settings
        .metrics
        .set_max_connections(settings.name, settings.max_connections);
    // Every connection holds a receiver; the sender learns when the last one is gone.
    let (drained_tx, drained_rx) = watch::channel(());
    loop {
        // A slot first, then the accept: beyond the limit new clients wait in the kernel's
        // listen backlog, holding none of our descriptors, and are accepted as slots free.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                settings.metrics.accept_error(settings.name);
                tracing::warn!(listener = settings.name, error = %e, "cannot accept connections");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (router, http, settings) = (router.clone(), http.clone(), settings.clone());
        let (stop, drained) = (stop.clone(), drained_rx.clone());
        tokio::spawn(async move {
            settings.metrics.connection_opened(settings.name);
            let tls = settings.tls.clone();
            let cut =
                connection::serve(stream, peer, router, &http, tls, settings.timeouts, stop).await;
            if let Some(why) = cut {
                settings.metrics.connection_cut(settings.name, why.as_str());
            }
            settings.metrics.connection_closed(settings.name);
            drop((slot, drained));
        });
    }
    // Refuse new clients at once rather than leave them in the backlog.
    drop(listener);
    drop(drained_rx);
    drained_tx.closed().await;
}

/// Errors of one connection that went away before it was accepted; the next one is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
