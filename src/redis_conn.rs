//! The shared Redis connection: connected lazily, reconnected by itself, every command bounded
//! by a short timeout, and its health tracked so callers can fall back to local state and
//! readiness can say `degraded`.

use crate::metrics::Metrics;
use redis::aio::ConnectionManager;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A Redis command that takes longer is treated as a failure: the request path must not hang
/// on a half-dead Redis.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
/// How often a broken connection is retried.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

pub struct Redis {
    client: redis::Client,
    connection: RwLock<Option<ConnectionManager>>,
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    down: AtomicBool,
    prefix: String,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("redis unavailable: {0}")]
    Error(String),
}

impl Redis {
    pub fn new(url: &str, prefix: &str, metrics: Arc<Metrics>) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            connection: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
            down: AtomicBool::new(false),
            prefix: prefix.to_owned(),
            metrics,
        })
    }

    /// Key namespace of this deployment (`redis.key_prefix`).
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        if let Ok(guard) = self.connection.read() {
            if let Some(connection) = guard.as_ref() {
                return Ok(connection.clone());
            }
        }
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return Err(RedisUnavailable::Error("not connected".into()));
        }
        *last = Some(Instant::now());
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1);
        let connected = tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match connected {
            Ok(Ok(connection)) => {
                if let Ok(mut guard) = self.connection.write() {
                    *guard = Some(connection.clone());
                }
                Ok(connection)
            }
            Ok(Err(e)) => Err(RedisUnavailable::Error(e.to_string())),
            Err(_) => Err(RedisUnavailable::Error("connect timed out".into())),
        }
    }

    /// Runs one command with the timeout, recording Redis health either way.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let result = match self.connection().await {
            Ok(connection) => {
                match tokio::time::timeout(COMMAND_TIMEOUT, command(connection)).await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => Err(RedisUnavailable::Error(e.to_string())),
                    Err(_) => Err(RedisUnavailable::Error("command timed out".into())),
                }
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => self.mark_up(),
            Err(e) => self.mark_down(e),
        }
        result
    }

    fn mark_up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!("redis is reachable again; shared state restored");
            self.metrics.redis_fallback.set(0);
        }
    }

    fn mark_down(&self, error: &RedisUnavailable) {
        self.metrics.redis_errors.inc();
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "redis unreachable; falling back to in-process state (degraded)");
            self.metrics.redis_fallback.set(1);
        }
    }

    /// Checks Redis now (for readiness).
    pub async fn ping(&self) -> bool {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .is_ok()
    }
}
