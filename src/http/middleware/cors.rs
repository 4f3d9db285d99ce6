//! CORS for portal pages calling from their own origin (DESIGN §17), with tower-http's layer.
//!
//! Only requests whose `Origin` is in `server.cors_allowed_origins` go through the layer;
//! every other request passes by untouched, so an unlisted origin gets no CORS header at all
//! (not even `Vary` or the allowed methods a bare `CorsLayer` adds to every preflight).
//! Preflights of listed origins are answered here, before authentication: a browser sends
//! them without the signature headers, which it is only asking permission to send.

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use data_vault_auth::headers as ve;
use std::sync::Arc;
use std::time::Duration;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The response headers a page may read: the request id, the audit event (§16) and the rate
/// limit's (§10).
pub const EXPOSED: [&str; 6] = [
    "x-request-id",
    "x-ve-audit-event",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// The request headers a page may send: every `X-VE-*` header of both signing schemes, and
/// `Content-Type` (JSON and raw uploads).
pub const ALLOWED: [&str; 8] = [
    ve::PRINCIPAL,
    ve::TIMESTAMP,
    ve::NONCE,
    ve::CONTENT_SHA256,
    ve::SIGNATURE,
    ve::ADDRESS,
    ve::PUBKEY,
    "content-type",
];

#[derive(Clone)]
pub struct Cors {
    origins: Arc<[HeaderValue]>,
    layer: CorsLayer,
}

impl Cors {
    /// The CORS policy for `origins` (already validated as origins by the configuration);
    /// `None` when there are none, so nothing is layered at all.
    pub fn new(origins: &[String]) -> Option<Self> {
        let origins: Arc<[HeaderValue]> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if origins.is_empty() {
            return None;
        }
        let layer = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers(ALLOWED.map(HeaderName::from_static))
            .expose_headers(EXPOSED.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE);
        Some(Self { origins, layer })
    }
}

/// Outermost layer: CORS for listed origins, nothing for the rest. Shared, not cloned, per
/// request (the layer holds the origin list).
pub async fn apply(
    State(cors): State<std::sync::Arc<Cors>>,
    request: Request,
    next: Next,
) -> Response {
    let listed = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| cors.origins.contains(origin));
    if !listed {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match cors.layer.layer(next).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    // tower-http answers a preflight 200 with an empty body; the contract says 204.
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}
