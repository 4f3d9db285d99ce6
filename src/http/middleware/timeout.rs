//! The request time limit: a request not answered within `server.request_timeout_secs` of its
//! first byte is answered 503 `unavailable`, and counted as `route="timed_out"`. Raw blob
//! uploads are the exception: they stream (DESIGN §18) and are refused when they stall.

use crate::http::drain;
use crate::http::error::ErrorBody;
use crate::metrics::Metrics;
use crate::server::RequestStarted;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What the time limit needs.
#[derive(Clone)]
pub struct TimeoutState {
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Bounds the time of everything inside it. It sits inside the request-id layer, so the 503
/// is rendered with the request's id and logged in its span.
pub async fn bound(State(state): State<TimeoutState>, request: Request, next: Next) -> Response {
    let timeout = state.timeout;
    // The limit counts from the request's first byte when the server knows it, so time spent
    // trickling the head is not granted again for the body.
    let started = request
        .extensions()
        .get::<RequestStarted>()
        .map_or_else(Instant::now, |s| s.0);
    let deadline = started.checked_add(timeout).unwrap_or_else(far_future);
    // A streamed upload may rightly take far longer (gigabytes at the client's pace): it is
    // bounded instead by its stall limit, and its connection by the idle rule.
    let streamed = crate::http::body::is_streamed_upload(
        request.method(),
        request.uri().path(),
        request.headers(),
    );
    // Refused before its body is read, a request's body is still read (within its time), so
    // that its client sees the answer.
    let until = match streamed {
        true => drain::Until::StallAfterRefusal(timeout),
        false => drain::Until::Deadline(deadline),
    };
    let mut request = drain::on_refusal(request, until);
    if streamed {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    // A request that runs out of time never gets its principal from authentication: log the
    // one it claimed (authentication reuses it rather than reading the headers again).
    let claimed = crate::http::auth::claimed_principal(request.headers());
    request.extensions_mut().insert(claimed.clone());
    match tokio::time::timeout_at(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request timed out");
            // The inner latency layer never finishes for these: count them here, so
            // error-rate and latency alerts see time-outs too.
            state
                .metrics
                .observe_request("timed_out", &method, 503, timeout.as_secs_f64());
            let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
            response.extensions_mut().insert(ErrorBody {
                code: "unavailable",
                message: "request timed out".into(),
            });
            response.extensions_mut().insert(claimed);
            response
        }
    }
}

/// A deadline that never comes, for a time limit too large to add.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}
