//! One log line per request for log pipelines (DESIGN §20): the request id (from the request
//! span), method, matched route, principal, status, outcome and duration. Inner layers leave
//! what only they know in the response's extensions: the route (the latency layer, which runs
//! after routing) and the principal (authentication: the proven one, or on a refusal the one
//! the request claimed).

use crate::http::error::ErrorBody;
use axum::http::Method;
use axum::response::Response;
use std::time::Duration;

/// The matched route of a request, left by the latency layer.
#[derive(Debug, Clone)]
pub struct Route(pub String);

/// The principal a request proved, or on a 401 the one it claimed.
#[derive(Debug, Clone)]
pub struct LoggedPrincipal(pub String);

/// Writes the request line. Health probes (every few seconds from every load balancer) are
/// logged at debug, the API at info.
pub fn line(method: &Method, response: &Response, elapsed: Duration) {
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str());
    let principal = response
        .extensions()
        .get::<LoggedPrincipal>()
        .map_or("-", |p| p.0.as_str());
    let outcome = response
        .extensions()
        .get::<ErrorBody>()
        .map_or_else(|| outcome_of(status), |e| e.code);
    let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let method = method.as_str();
    if route.starts_with("/api/") {
        tracing::info!(target: "data_vault::access", method, route, principal, status, outcome, latency_ms, "request");
    } else {
        tracing::debug!(target: "data_vault::access", method, route, principal, status, outcome, latency_ms, "request");
    }
}

/// The outcome of a response that carries no error code of ours.
fn outcome_of(status: u16) -> &'static str {
    match status {
        100..=399 => "ok",
        404 => "not_found",
        400..=499 => "bad_request",
        _ => "internal",
    }
}
