//! Time: the vault stores times as Unix seconds (or milliseconds) and shows them as RFC 3339.
//!
//! The service never reads the wall clock itself: it is handed a [`Clock`], so tests can set
//! the time (expiry, retention windows, replay windows) instead of sleeping. Only
//! [`SystemClock`] reads the system time; clippy's `disallowed-methods` keeps it that way.

use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// Where the vault gets the time from.
pub trait Clock: Send + Sync {
    fn now_millis(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place that reads the wall clock.
    fn now_millis(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that stands still until told otherwise: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at_millis(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    pub fn set_millis(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system time in Unix seconds, for the edges that have no vault (the client CLI and
/// tests signing requests). The service uses its [`Clock`].
pub fn now_secs() -> i64 {
    SystemClock.now_secs()
}

/// The system time in Unix milliseconds; see [`now_secs`].
pub fn now_millis() -> i64 {
    SystemClock.now_millis()
}

pub fn to_rfc3339(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_millis(1_700_000_000_999);
        assert_eq!(clock.now_secs(), 1_700_000_000);
        clock.advance_secs(60);
        assert_eq!(clock.now_millis(), 1_700_000_060_999);
        clock.set_millis(-1);
        assert_eq!(clock.now_secs(), -1, "seconds round down, also before 1970");
    }
}
