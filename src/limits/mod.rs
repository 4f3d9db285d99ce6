//! Abuse control (DESIGN §10): rate limits per client IP (before authentication, since checking
//! signatures costs CPU), per principal and per org (after it). In-process GCRA by default;
//! with Redis, one GCRA state shared by every replica, with the in-process limiter kept warm
//! as the fallback for when Redis is unreachable.

mod local;
mod shared;

use crate::error::VaultError;
use crate::metrics::Metrics;
use crate::redis_conn::Redis;
use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub use local::LocalLimiter;
pub use shared::SharedLimiter;

/// A limit a request is checked against. Its configured name keys the limiter; its label
/// is what the `rate_limited` metric counts (one label for all scopes, so the label set stays
/// bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit<'a> {
    /// Per client address, before authentication.
    Ip,
    /// Per authenticated principal.
    Principal,
    /// Per org, where a request names one.
    Org,
    /// A scope's own per-principal limit (`rate_limit.scopes.<name>`).
    Scope(&'a str),
}

impl Limit<'_> {
    /// The limiter's name for it: `ip`, `principal`, `org` or `scope:<name>`.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Limit::Scope(scope) => Cow::Owned(format!("scope:{scope}")),
            other => Cow::Borrowed(other.label()),
        }
    }

    /// The `limit` label of `virtengine_data_vault_rate_limited_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Limit::Ip => "ip",
            Limit::Principal => "principal",
            Limit::Org => "org",
            Limit::Scope(_) => "scope",
        }
    }
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
        Duration::from_nanos(saturating_u64(1e9 / self.per_second).max(1))
    }
}

/// `x` as a `u64`, for the non-negative finite quotients of a validated [`Rate`]. Rust's `as`
/// from `f64` saturates at both ends and maps NaN to 0 (defined behaviour since 1.45), so this
/// never wraps; the clamp only states the intended range.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn saturating_u64(x: f64) -> u64 {
    x.clamp(0.0, u64::MAX as f64) as u64
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

impl Verdict {
    /// The verdict for a limit that is not configured.
    fn unlimited() -> Self {
        Self {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_secs: 0,
            retry_after_secs: 0,
        }
    }
}

/// The limiter the server uses: shared through Redis when configured, else in-process.
pub struct Limiter {
    local: LocalLimiter,
    shared: Option<SharedLimiter>,
    metrics: Arc<Metrics>,
}

impl Limiter {
    /// `rates` names each limit by [`Limit::name`]; refusals are counted in `metrics`.
    pub fn new(
        rates: Vec<(String, Rate)>,
        redis: Option<Arc<Redis>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            local: LocalLimiter::new(&rates),
            shared: redis.map(|r| SharedLimiter::new(r, &rates)),
            metrics,
        }
    }

    /// The one check every limit goes through: counts `key` against `limit`, and when it is
    /// over, counts the refusal and answers with the 429 error (whose verdict carries the
    /// `Retry-After` and `X-RateLimit-*` values). A limit that is not configured allows
    /// everything.
    pub async fn enforce(&self, limit: Limit<'_>, key: &str) -> Result<Verdict, VaultError> {
        let name = limit.name();
        if !self.local.has(&name) {
            return Ok(Verdict::unlimited());
        }
        let verdict = self.check(&name, key).await;
        if verdict.allowed {
            Ok(verdict)
        } else {
            self.metrics.rate_limited(limit.label());
            Err(VaultError::RateLimited(verdict))
        }
    }

    async fn check(&self, limit: &str, key: &str) -> Verdict {
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

    fn limiter(rates: &[(Limit<'_>, u32)]) -> (Limiter, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        let rates = rates
            .iter()
            .map(|(limit, burst)| (limit.name().into_owned(), Rate::new(0.001, *burst).unwrap()))
            .collect();
        (Limiter::new(rates, None, metrics.clone()), metrics)
    }

    #[tokio::test]
    async fn enforce_refuses_over_the_burst_with_the_429_error_and_counts_it() {
        let (limiter, metrics) = limiter(&[(Limit::Scope("kyc"), 2)]);
        let allowed = limiter.enforce(Limit::Scope("kyc"), "alice").await.unwrap();
        assert_eq!(
            (allowed.allowed, allowed.limit, allowed.remaining),
            (true, 2, 1)
        );
        limiter.enforce(Limit::Scope("kyc"), "alice").await.unwrap();
        let refused = limiter.enforce(Limit::Scope("kyc"), "alice").await;
        match refused {
            Err(VaultError::RateLimited(verdict)) => {
                assert!(
                    !verdict.allowed && verdict.retry_after_secs >= 1,
                    "{verdict:?}"
                );
            }
            other => panic!("expected a 429 error, got {other:?}"),
        }
        // Scopes share one label; the key is not a label at all.
        let rendered = metrics.render();
        assert!(
            rendered.contains(r#"virtengine_data_vault_rate_limited_total{limit="scope"} 1"#),
            "{rendered}"
        );
        assert!(limiter.enforce(Limit::Scope("kyc"), "bob").await.is_ok());
    }

    #[tokio::test]
    async fn a_limit_that_is_not_configured_allows_everything_and_counts_nothing() {
        let (limiter, metrics) = limiter(&[(Limit::Principal, 1)]);
        for _ in 0..3 {
            let verdict = limiter
                .enforce(Limit::Scope("other"), "alice")
                .await
                .unwrap();
            assert!(verdict.allowed);
        }
        assert!(!metrics.render().contains("rate_limited_total{"));
    }

    #[test]
    fn names_key_the_limiter_and_labels_stay_bounded() {
        let named: Vec<(String, &str)> =
            [Limit::Ip, Limit::Principal, Limit::Org, Limit::Scope("kyc")]
                .iter()
                .map(|l| (l.name().into_owned(), l.label()))
                .collect();
        assert_eq!(
            named,
            vec![
                ("ip".to_owned(), "ip"),
                ("principal".to_owned(), "principal"),
                ("org".to_owned(), "org"),
                ("scope:kyc".to_owned(), "scope"),
            ]
        );
    }
}
