//! In-process GCRA limiters (governor), one keyed limiter per kind of limit.

use super::{Rate, Verdict};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub struct LocalLimiter {
    limiters: HashMap<String, (Keyed, Rate)>,
    clock: DefaultClock,
}

fn quota(rate: Rate) -> Option<Quota> {
    Some(Quota::with_period(rate.period())?.allow_burst(NonZeroU32::new(rate.burst())?))
}

impl LocalLimiter {
    /// Every [`Rate`] is valid by construction, so every kind gets its limiter.
    pub fn new(rates: &[(String, Rate)]) -> Self {
        let limiters = rates
            .iter()
            .filter_map(|(kind, rate)| {
                let limiter = RateLimiter::keyed(quota(*rate)?)
                    .with_middleware::<StateInformationMiddleware>();
                Some((kind.clone(), (limiter, *rate)))
            })
            .collect();
        Self {
            limiters,
            clock: DefaultClock::default(),
        }
    }

    pub fn has(&self, limit: &str) -> bool {
        self.limiters.contains_key(limit)
    }

    pub fn check(&self, limit: &str, key: &str) -> Verdict {
        let Some((limiter, rate)) = self.limiters.get(limit) else {
            return Verdict {
                allowed: true,
                limit: 0,
                remaining: 0,
                reset_secs: 0,
                retry_after_secs: 0,
            };
        };
        let full_after = |remaining: u32| {
            let missing = rate.burst().saturating_sub(remaining) as f64;
            super::saturating_u64((missing / rate.per_second()).ceil())
        };
        match limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Verdict {
                    allowed: true,
                    limit: rate.burst(),
                    remaining,
                    reset_secs: full_after(remaining),
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Verdict {
                    allowed: false,
                    limit: rate.burst(),
                    remaining: 0,
                    reset_secs: full_after(0),
                    // Whole seconds, rounded up, at least one.
                    retry_after_secs: wait
                        .as_secs()
                        .saturating_add(u64::from(wait.subsec_nanos() > 0))
                        .max(1),
                }
            }
        }
    }

    pub fn sweep(&self) {
        for (limiter, _) in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_burst_is_refused_and_others_are_not() {
        let limiter = LocalLimiter::new(&[("principal".to_owned(), Rate::new(0.5, 3).unwrap())]);
        let seen: Vec<bool> = (0..4)
            .map(|_| limiter.check("principal", "a").allowed)
            .collect();
        assert_eq!(seen, vec![true, true, true, false]);
        let refused = limiter.check("principal", "a");
        assert_eq!((refused.remaining, refused.limit), (0, 3));
        assert!(refused.retry_after_secs >= 1);
        assert!(limiter.check("principal", "b").allowed);
    }

    #[test]
    fn remaining_counts_down() {
        let limiter = LocalLimiter::new(&[("ip".to_owned(), Rate::new(1.0, 5).unwrap())]);
        let remaining: Vec<u32> = (0..5).map(|_| limiter.check("ip", "x").remaining).collect();
        assert_eq!(remaining, vec![4, 3, 2, 1, 0]);
    }
}
