//! One log line per request for log pipelines (DESIGN §20): the request id (from the request
//! span), method, matched route, principal, status, outcome and duration. The route is the
//! request's own [`MatchedPath`] (every layer of the API router runs after routing), so even a
//! response that no inner layer finished, such as a time-out's 503, names its route. The
//! principal is left in the response's extensions by authentication: the proven one, or on a
//! refusal the one the request claimed; on a time-out, by the time limit: the one claimed.

use crate::http::error::ErrorBody;
use axum::extract::MatchedPath;
use axum::http::Method;
use axum::response::Response;
use std::time::Duration;

/// What the request line needs to know of the request, taken before it runs.
pub struct Requested {
    pub method: Method,
    /// The matched route, or `unmatched` for a path no route takes.
    pub route: String,
}

impl Requested {
    pub fn of<B>(request: &axum::http::Request<B>) -> Self {
        Self {
            method: request.method().clone(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned()),
        }
    }
}

/// The principal a request proved, or on a 401 or a time-out the one it claimed.
#[derive(Debug, Clone)]
pub struct LoggedPrincipal(pub String);

/// Writes the request line. Health probes (every few seconds from every load balancer) are
/// logged at debug; everything else, unmatched paths and time-outs included, at info.
pub fn line(requested: &Requested, response: &Response, elapsed: Duration) {
    let status = response.status();
    let route = requested.route.as_str();
    let principal = response
        .extensions()
        .get::<LoggedPrincipal>()
        .map_or("-", |p| p.0.as_str());
    let outcome = outcome(response);
    let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let method = requested.method.as_str();
    let status = status.as_u16();
    if is_health_probe(route) {
        tracing::debug!(target: "data_vault::access", method, route, principal, status, outcome, latency_ms, "request");
    } else {
        tracing::info!(target: "data_vault::access", method, route, principal, status, outcome, latency_ms, "request");
    }
}

fn is_health_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz")
}

/// The response's error code, the very one its body is rendered with: ours when a handler or
/// layer set one, else the code the request-id layer gives a bodiless error.
fn outcome(response: &Response) -> &'static str {
    let status = response.status();
    match response.extensions().get::<ErrorBody>() {
        Some(error) => error.code,
        None if status.is_client_error() || status.is_server_error() => {
            ErrorBody::for_status(status).code
        }
        None => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    #[test]
    fn a_bodiless_error_is_logged_with_the_code_its_body_gets() {
        for (status, code) in [
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            (StatusCode::NOT_FOUND, "not_found"),
            (StatusCode::METHOD_NOT_ALLOWED, "bad_request"),
            (StatusCode::SERVICE_UNAVAILABLE, "internal"),
            (StatusCode::NO_CONTENT, "ok"),
        ] {
            assert_eq!(outcome(&status.into_response()), code, "{status}");
        }
    }

    #[test]
    fn only_the_health_probes_are_logged_at_debug() {
        assert!(is_health_probe("/healthz") && is_health_probe("/readyz"));
        for route in ["unmatched", "/api/v1/openapi.json", "/api/v1/vault/blobs"] {
            assert!(!is_health_probe(route), "{route}");
        }
    }
}
