//! Denial-spike detection (DESIGN §10): N authorisation denials by one principal, or against
//! one org, within a window raise one `security.denial_spike` event per window, and optionally
//! block the principal for a while. Windows are fixed and aligned to the epoch, so with Redis
//! every replica counts into the same window and exactly one replica sees the count reach the
//! threshold; without Redis each replica counts its own.

use crate::redis_conn::Redis;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bound of the in-process counters; when full, windows that have ended are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpikeKind {
    Principal,
    Org,
}

impl SpikeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpikeKind::Principal => "principal",
            SpikeKind::Org => "org",
        }
    }
}

/// A spike that has just been detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spike {
    pub kind: SpikeKind,
    pub subject: String,
}

pub struct SpikeSettings {
    pub threshold: u32,
    pub window_secs: u64,
    /// `Some(seconds)` to block a principal that spikes.
    pub block_secs: Option<u64>,
}

pub struct SpikeDetector {
    settings: SpikeSettings,
    counts: Mutex<HashMap<(SpikeKind, String), (i64, u32)>>,
    blocked: Mutex<HashMap<String, i64>>,
    redis: Option<Arc<Redis>>,
}

impl SpikeDetector {
    pub fn new(settings: SpikeSettings, redis: Option<Arc<Redis>>) -> Self {
        Self {
            settings,
            counts: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
            redis,
        }
    }

    pub fn settings(&self) -> &SpikeSettings {
        &self.settings
    }

    /// Counts one denial; returns the spikes it completes (at most one per kind and window).
    pub async fn observe(&self, principal: &str, org: Option<&str>, now_ms: i64) -> Vec<Spike> {
        // The configuration insists on a window of at least a second; `max` keeps this total.
        let window_ms = i64::try_from(self.settings.window_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
            .max(1);
        let window = now_ms.div_euclid(window_ms);
        let mut subjects = vec![(SpikeKind::Principal, principal)];
        if let Some(org) = org {
            subjects.push((SpikeKind::Org, org));
        }
        let mut spikes = Vec::new();
        for (kind, subject) in subjects {
            let count = match self.count_shared(kind, subject, window).await {
                Some(count) => count,
                None => self.count_local(kind, subject, window),
            };
            if count == u64::from(self.settings.threshold) {
                spikes.push(Spike {
                    kind,
                    subject: subject.to_owned(),
                });
            }
        }
        spikes
    }

    async fn count_shared(&self, kind: SpikeKind, subject: &str, window: i64) -> Option<u64> {
        let redis = self.redis.as_ref()?;
        let key = redis.key(&["spike", kind.as_str(), subject, &window.to_string()]);
        let ttl = self.settings.window_secs * 2;
        redis
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&key)
                    .cmd("EXPIRE")
                    .arg(&key)
                    .arg(ttl)
                    .ignore()
                    .query_async::<(u64,)>(&mut c)
                    .await
            })
            .await
            .ok()
            .map(|(count,)| count)
    }

    fn count_local(&self, kind: SpikeKind, subject: &str, window: i64) -> u64 {
        let Ok(mut counts) = self.counts.lock() else {
            return 0;
        };
        if counts.len() >= MAX_TRACKED {
            counts.retain(|_, (w, _)| *w == window);
            if counts.len() >= MAX_TRACKED {
                return 0;
            }
        }
        let entry = counts
            .entry((kind, subject.to_owned()))
            .or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        u64::from(entry.1)
    }

    /// Blocks `principal` until `until_ms` (in Redis too, so every replica honours it).
    pub async fn block(&self, principal: &str, until_ms: i64, now_ms: i64) {
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.retain(|_, until| *until > now_ms);
            if blocked.len() < MAX_TRACKED {
                blocked.insert(principal.to_owned(), until_ms);
            }
        }
        if let Some(redis) = &self.redis {
            let key = redis.key(&["blocked", principal]);
            let ttl_ms = (until_ms - now_ms).max(1);
            let _ = redis
                .run(|mut c| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(until_ms)
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        }
    }

    /// When `principal` is blocked, until when (Unix ms).
    pub async fn blocked_until(&self, principal: &str, now_ms: i64) -> Option<i64> {
        self.settings.block_secs?;
        let local = self
            .blocked
            .lock()
            .ok()
            .and_then(|b| b.get(principal).copied())
            .filter(|until| *until > now_ms);
        if local.is_some() {
            return local;
        }
        let redis = self.redis.as_ref()?;
        let key = redis.key(&["blocked", principal]);
        redis
            .run(|mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<i64>>(&mut c)
                    .await
            })
            .await
            .ok()
            .flatten()
            .filter(|until| *until > now_ms)
    }

    /// How many principals this replica currently holds blocked.
    pub fn blocked_count(&self, now_ms: i64) -> i64 {
        self.blocked
            .lock()
            .map(|b| {
                i64::try_from(b.values().filter(|until| **until > now_ms).count())
                    .unwrap_or(i64::MAX)
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(block: Option<u64>) -> SpikeDetector {
        SpikeDetector::new(
            SpikeSettings {
                threshold: 3,
                window_secs: 60,
                block_secs: block,
            },
            None,
        )
    }

    #[tokio::test]
    async fn exactly_one_spike_per_window_per_subject() {
        let d = detector(None);
        let mut spikes = Vec::new();
        for i in 0..10 {
            spikes.extend(d.observe("mallory", Some("acme"), 1_000 + i).await);
        }
        assert_eq!(
            spikes,
            vec![
                Spike {
                    kind: SpikeKind::Principal,
                    subject: "mallory".into()
                },
                Spike {
                    kind: SpikeKind::Org,
                    subject: "acme".into()
                },
            ]
        );
        // The next window starts counting afresh.
        let mut next = Vec::new();
        for i in 0..3 {
            next.extend(d.observe("mallory", None, 60_000 + i).await);
        }
        assert_eq!(next.len(), 1);
    }

    #[tokio::test]
    async fn denials_of_different_principals_do_not_add_up() {
        let d = detector(None);
        for who in ["a", "b", "c", "d"] {
            for i in 0..2 {
                assert!(d.observe(who, None, i).await.is_empty());
            }
        }
    }

    #[tokio::test]
    async fn a_block_lasts_until_its_end() {
        let d = detector(Some(10));
        d.block("mallory", 20_000, 10_000).await;
        assert_eq!(d.blocked_until("mallory", 15_000).await, Some(20_000));
        assert_eq!(d.blocked_until("mallory", 20_001).await, None);
        assert_eq!(d.blocked_until("alice", 15_000).await, None);
    }
}
