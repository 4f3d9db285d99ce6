//! Per-request middleware, one concern a file: the request id (and the error bodies that carry
//! it), the request log line, the time limit, latency by matched route, and the per-IP limit.

pub mod access_log;
pub mod ip_limit;
pub mod latency;
pub mod request_id;
pub mod timeout;
