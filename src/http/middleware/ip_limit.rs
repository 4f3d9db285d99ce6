//! The per-IP rate limit, applied before authentication so that floods of forged requests do
//! not cost a signature check each.

use crate::error::VaultError;
use crate::http::AppState;
use crate::limits::Limit;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

/// The client address: the TCP peer, or behind a load balancer the last value of the
/// configured header (the address the balancer itself saw; earlier values are client-supplied
/// and could be forged).
fn client_ip(request: &Request, header: Option<&str>) -> String {
    let forwarded = header.and_then(|name| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .and_then(|v| v.parse::<std::net::IpAddr>().ok())
    });
    forwarded
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

pub async fn limit_ip(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, VaultError> {
    if let Some(limiter) = &state.vault.abuse().limiter {
        let ip = client_ip(&request, state.client_ip_header.as_deref());
        limiter.enforce(Limit::Ip, &ip).await?;
    }
    Ok(next.run(request).await)
}
