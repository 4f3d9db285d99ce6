//! The HTTP layer: thin adapters from requests to the vault's use cases. One router per
//! resource, merged here; request ids, timing and authentication as middleware.

mod audit;
mod auth;
mod blobs;
mod body;
pub mod error;
mod health;
mod json_body;
mod limits;
mod orgs;
mod query;
mod request_id;

use crate::metrics::Metrics;
use crate::service::Vault;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

pub use auth::Authenticator;

/// The parsers of untrusted request input, exactly as the handlers call them; public so that
/// the fuzz targets in `fuzz/` exercise the real path rather than a copy.
pub mod parse {
    pub use super::audit::{audit_params, verify_org};
    pub use super::blobs::{json_upload, list_params, raw_upload, read_params};
    pub use super::orgs::member_roles;
    pub use super::query::{parse as query, MAX_QUERY_LEN};
}

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub auth: Arc<Authenticator>,
    /// Shared state across replicas, when configured.
    pub redis: Option<Arc<crate::redis_conn::Redis>>,
    /// `server.client_ip_header`, for the per-IP limit behind a load balancer.
    pub client_ip_header: Option<String>,
}

/// The public API: `/api/v1/...` behind authentication, plus `/healthz` and `/readyz`.
pub fn api_router(state: AppState, request_timeout: Duration) -> Router {
    let metrics = state.vault.metrics().clone();
    let authenticated = blobs::router()
        .merge(orgs::router())
        .merge(audit::router())
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::authenticate,
        ))
        // Added last, so it runs first: before any signature is checked.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_ip,
        ))
        .with_state(state.clone());
    Router::new()
        .merge(authenticated)
        .merge(health::router().with_state(state))
        .route_layer(middleware::from_fn_with_state(
            metrics.clone(),
            request_id::observe,
        ))
        // The authentication middleware enforces the body limit itself, before buffering.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            request_id::ContextState {
                timeout: request_timeout,
                metrics: metrics.clone(),
            },
            request_id::request_context,
        ))
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
