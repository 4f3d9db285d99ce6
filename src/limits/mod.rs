//! Abuse control (DESIGN §10): rate limits per client IP (before authentication, since checking
//! signatures costs CPU), per principal and per org (after it). In-process GCRA by default;
//! with Redis, one GCRA state shared by every replica, with the in-process limiter kept warm
//! as the fallback for when Redis is unreachable.

mod local;
mod shared;

use crate::redis_conn::Redis;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

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

/// A rate: a sustained number of requests per second and a burst allowed at once. Only
/// [`Rate::new`] makes one, so every rate in use is finite, positive and has a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: NonZeroU32,
}

/// The fastest rate accepted: beyond it a limit means nothing, and GCRA's interval would
/// round to zero.
pub const MAX_PER_SECOND: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRate {
    #[error("must be a number greater than 0 and at most 1000000")]
    PerSecond,
    #[error("must be at least 1")]
    Burst,
}

impl Rate {
    pub fn new(per_second: f64, burst: u32) -> Result<Self, InvalidRate> {
        // NaN fails both comparisons; infinities fail the upper bound.
        if !(per_second > 0.0 && per_second <= MAX_PER_SECOND) {
            return Err(InvalidRate::PerSecond);
        }
        let burst = NonZeroU32::new(burst).ok_or(InvalidRate::Burst)?;
        Ok(Self { per_second, burst })
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The time between two requests at the sustained rate; at least a nanosecond.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(((1e9 / self.per_second) as u64).max(1))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_positive_rates_with_a_burst_are_rates() {
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_PER_SECOND * 2.0] {
            assert_eq!(
                Rate::new(per_second, 5),
                Err(InvalidRate::PerSecond),
                "{per_second}"
            );
        }
        assert_eq!(Rate::new(5.0, 0), Err(InvalidRate::Burst));
        let slowest = Rate::new(f64::MIN_POSITIVE, 1).unwrap();
        assert!(slowest.period() > Duration::from_secs(1));
        let fastest = Rate::new(MAX_PER_SECOND, 1).unwrap();
        assert_eq!(fastest.period(), Duration::from_micros(1));
    }
}
