//! The HTTP layer: thin adapters from requests to the vault's use cases. One router per
//! resource, merged here; request ids, time limit, latency, the IP limit and authentication
//! as middleware; the caller reaches handlers through the [`extract::Authenticated`]
//! extractor.

mod audit;
mod auth;
mod blobs;
mod body;
mod drain;
pub mod error;
mod extract;
mod health;
mod json_body;
mod keys;
mod middleware;
pub mod openapi;
mod orgs;
mod query;
mod recipients;
mod retention;

use crate::metrics::Metrics;
use crate::service::Vault;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use middleware::{ip_limit, latency, request_id, timeout};
use std::sync::Arc;
use std::time::Duration;

pub use auth::Authenticator;
pub use extract::Authenticated;

/// The parsers of untrusted request input, exactly as the handlers call them; public so that
/// the fuzz targets in `fuzz/` exercise the real path rather than a copy.
pub mod parse {
    pub use super::audit::{audit_params, consistency_params, inclusion_params, verify_org};
    pub use super::blobs::{json_upload, list_params, raw_upload, read_params};
    pub use super::orgs::member_roles;
    pub use super::query::{parse as query, MAX_QUERY_LEN};
    pub use super::recipients::{readers_scope, recipients_body};
}

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub auth: Arc<Authenticator>,
    /// Shared state across replicas, when configured.
    pub redis: Option<Arc<crate::redis_conn::Redis>>,
    /// `server.client_ip_header`, for the per-IP limit behind a load balancer.
    pub client_ip_header: Option<String>,
    /// How long a streamed upload may go without a byte before it is refused.
    pub upload_stall: Duration,
}

/// The public API: `/api/v1/...` behind authentication, plus `/healthz` and `/readyz`.
pub fn api_router(state: AppState, request_timeout: Duration) -> Router {
    let metrics = state.vault.metrics().clone();
    let authenticated = blobs::router()
        .merge(orgs::router())
        .merge(audit::router())
        .merge(recipients::router())
        .merge(retention::router())
        .merge(keys::router())
        .route_layer(from_fn_with_state(state.auth.clone(), auth::authenticate))
        // Added last, so it runs first: before any signature is checked.
        .route_layer(from_fn_with_state(state.clone(), ip_limit::limit_ip))
        .with_state(state.clone());
    Router::new()
        .merge(authenticated)
        .merge(health::router().with_state(state))
        .merge(openapi::router())
        .route_layer(from_fn_with_state(metrics.clone(), latency::observe))
        // The authentication middleware enforces the body limit itself, before buffering.
        .layer(DefaultBodyLimit::disable())
        // Inside the request id, so a time-out's 503 is rendered with the id and logged in
        // the request's span.
        .layer(from_fn_with_state(
            timeout::TimeoutState {
                timeout: request_timeout,
                metrics,
            },
            timeout::bound,
        ))
        // Outermost: every response, even one the router made up, leaves with an id.
        .layer(from_fn(request_id::assign))
}

/// What browsers and TLS add around [`api_router`] (DESIGN §17).
pub struct Serving<'a> {
    pub cors_allowed_origins: &'a [String],
    pub tls: bool,
}

/// `api` with the security headers on every response and, outermost, CORS for the
/// configured origins (so even an error answer carries it and the page can read it).
pub fn serve_browsers(api: Router, serving: &Serving<'_>) -> Router {
    let api = api.layer(from_fn_with_state(
        middleware::security_headers::OverTls(serving.tls),
        middleware::security_headers::add,
    ));
    match middleware::cors::Cors::new(serving.cors_allowed_origins) {
        Some(cors) => api.layer(from_fn_with_state(
            std::sync::Arc::new(cors),
            middleware::cors::apply,
        )),
        None => api,
    }
}

/// The metrics listener's router: `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    )
}
