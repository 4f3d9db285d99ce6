//! A request id on every response and log line, and every error body rendered with it.

use crate::http::error::ErrorBody;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, for handlers and the audit trail.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Outermost layer: assigns the id, runs the request in a span that carries it, and renders
/// error bodies with it.
pub async fn assign(mut request: Request, next: Next) -> Response {
    // Our own id, never the client's: a caller-chosen id could forge log lines.
    let id = uuid::Uuid::new_v4().simple().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let requested = super::access_log::Requested::of(&request);
    let started = tokio::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| super::access_log::line(&requested, &response, started.elapsed()));
    finish(response, &id)
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
