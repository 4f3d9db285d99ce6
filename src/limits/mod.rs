//! Abuse control (DESIGN §10): rate limits per client IP (before authentication, since checking
//! signatures costs CPU), per principal and per org (after it). In-process GCRA by default;
//! with Redis, one GCRA state shared by every replica, with the in-process limiter kept warm
//! as the fallback for when Redis is unreachable.

mod local;
mod shared;

use crate::redis_conn::Redis;
use std::sync::Arc;

pub use local::LocalLimiter;
pub use shared::SharedLimiter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    Ip,
    Principal,
    Org,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Ip => "ip",
            LimitKind::Principal => "principal",
            LimitKind::Org => "org",
        }
    }
}

/// The name of a per-principal limit in one scope.
pub fn scope_limit(scope: &str) -> String {
    format!("scope:{scope}")
}

/// A rate: a sustained number of requests per second and a burst allowed at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// The outcome of one check, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// The burst size: how many requests may be made at once.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying (0 when allowed).
    pub retry_after_secs: u64,
}

/// The limiter the server uses: shared through Redis when configured, else in-process.
pub struct Limiter {
    local: LocalLimiter,
    shared: Option<SharedLimiter>,
}

impl Limiter {
    /// `rates` names each limit: `ip`, `principal`, `org`, and `scope:<name>` for the scopes
    /// that have a limit of their own.
    pub fn new(rates: Vec<(String, Rate)>, redis: Option<Arc<Redis>>) -> Self {
        Self {
            local: LocalLimiter::new(&rates),
            shared: redis.map(|r| SharedLimiter::new(r, &rates)),
        }
    }

    /// Whether a limit of that name is configured.
    pub fn has(&self, limit: &str) -> bool {
        self.local.has(limit)
    }

    pub async fn check(&self, limit: &str, key: &str) -> Verdict {
        // The local limiter sees every request, so it is warm when Redis goes away.
        let local = self.local.check(limit, key);
        match &self.shared {
            Some(shared) => shared.check(limit, key).await.unwrap_or(local),
            None => local,
        }
    }

    /// Drops idle keys so the in-process state stays bounded.
    pub fn sweep(&self) {
        self.local.sweep();
    }
}
