//! Per-request context: a request id on every response and log line, a time limit, error
//! bodies rendered with that id, and latency observed by matched route.

use super::error::ErrorBody;
use crate::metrics::Metrics;
use crate::server::RequestStarted;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, for handlers and the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What the outermost layer needs.
#[derive(Clone)]
pub struct ContextState {
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Outermost layer: assigns the id, bounds the time, and renders error bodies.
pub async fn request_context(
    State(context): State<ContextState>,
    mut request: Request,
    next: Next,
) -> Response {
    let timeout = context.timeout;
    // The limit counts from the request's first byte when the server knows it, so time spent
    // trickling the head is not granted again for the body.
    let started = request
        .extensions()
        .get::<RequestStarted>()
        .map_or_else(Instant::now, |s| s.0);
    let deadline = started.checked_add(timeout).unwrap_or_else(far_future);
    let method = request.method().as_str().to_owned();
    // Our own id, never the client's: a caller-chosen id could forge log lines.
    let id = uuid::Uuid::new_v4().simple().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let response =
        match tokio::time::timeout_at(deadline, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => {
                span.in_scope(|| tracing::warn!("request timed out"));
                // The inner latency layer never finishes for these: count them here, so
                // error-rate and latency alerts see time-outs too.
                context
                    .metrics
                    .observe_request("timed_out", &method, 503, timeout.as_secs_f64());
                let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
                response.extensions_mut().insert(ErrorBody {
                    code: "unavailable",
                    message: "request timed out".into(),
                });
                response
            }
        };
    finish(response, &id)
}

/// A deadline that never comes, for a time limit too large to add.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn finish(mut response: Response, id: &str) -> Response {
    let status = response.status();
    let error = response.extensions_mut().remove::<ErrorBody>();
    let error = match error {
        Some(body) => Some(body),
        // Errors produced outside our handlers (unknown route, wrong method) get the same
        // shape as ours.
        None if status.is_client_error() || status.is_server_error() => {
            let empty = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_none_or(|ct| !ct.as_bytes().starts_with(b"application/json"));
            empty.then(|| ErrorBody::for_status(status))
        }
        None => None,
    };
    if let Some(body) = error {
        let json = serde_json::json!({
            "error": body.message,
            "code": body.code,
            "request_id": id,
        });
        let headers = response.headers().clone();
        response = (status, axum::Json(json)).into_response();
        for (name, value) in headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                response.headers_mut().insert(name.clone(), value.clone());
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Latency by matched route (never the raw path, whose ids would explode the label set).
pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
