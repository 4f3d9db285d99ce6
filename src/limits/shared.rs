//! GCRA in Redis: one Lua script, atomic, using Redis's own clock so that every replica
//! agrees on time. The key holds the bucket's "theoretical arrival time" in milliseconds.

use super::{Rate, Verdict};
use crate::redis_conn::{Redis, RedisUnavailable};
use std::collections::HashMap;
use std::sync::Arc;

/// Returns {allowed, remaining, retry_after_ms, reset_ms}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local tolerance = interval * burst
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, math.ceil(new_tat - now)}
";

pub struct SharedLimiter {
    redis: Arc<Redis>,
    script: redis::Script,
    rates: HashMap<String, Rate>,
}

impl SharedLimiter {
    pub fn new(redis: Arc<Redis>, rates: &[(String, Rate)]) -> Self {
        Self {
            redis,
            script: redis::Script::new(GCRA),
            rates: rates.iter().cloned().collect(),
        }
    }

    pub async fn check(&self, limit: &str, key: &str) -> Result<Verdict, RedisUnavailable> {
        let Some(rate) = self.rates.get(limit).copied() else {
            return Err(RedisUnavailable::Error("no rate for this kind".into()));
        };
        let interval_ms = (1000.0 / rate.per_second()).max(1.0);
        let redis_key = self.redis.key(&["rl", limit, key]);
        let script = &self.script;
        let (allowed, remaining, retry_ms, reset_ms): (i64, i64, i64, i64) = self
            .redis
            .run(|mut c| async move {
                script
                    .key(redis_key)
                    .arg(interval_ms)
                    .arg(rate.burst())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let secs = |ms: i64| u64::try_from(ms).unwrap_or(0).div_ceil(1000);
        Ok(Verdict {
            allowed: allowed == 1,
            limit: rate.burst(),
            remaining: u32::try_from(remaining.clamp(0, i64::from(rate.burst()))).unwrap_or(0),
            reset_secs: secs(reset_ms),
            retry_after_secs: if allowed == 1 {
                0
            } else {
                secs(retry_ms).max(1)
            },
        })
    }
}
