//! The headers a browser-facing API sends on every response: nothing it returns is a page to
//! render, frame, sniff, cache or leak a referrer from; over TLS, browsers must stay on TLS.

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

const ALWAYS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
    // Envelopes, metadata and audit answers belong to one caller: no shared cache keeps them.
    (header::CACHE_CONTROL, "no-store"),
];

/// Two years, the value HSTS preload lists ask for.
const HSTS: &str = "max-age=63072000";

/// Whether the listener speaks TLS (then `Strict-Transport-Security` is sent too).
#[derive(Clone, Copy)]
pub struct OverTls(pub bool);

pub async fn add(State(OverTls(tls)): State<OverTls>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in ALWAYS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}
