//! Per-request middleware, one concern a file: the request id (and the error bodies that carry
//! it), the request log line, the time limit, latency by matched route, the per-IP limit,
//! CORS and the security headers.

pub mod access_log;
pub mod cors;
pub mod ip_limit;
pub mod latency;
pub mod request_id;
pub mod security_headers;
pub mod timeout;
