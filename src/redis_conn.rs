//! The shared Redis connection: connected lazily, every command bounded by a short timeout,
//! its health tracked so callers can fall back to local state and readiness can say
//! `degraded`, and a circuit breaker (DESIGN §20): after a failure Redis is skipped outright
//! for a back-off, so a Redis that goes away mid-flight costs requests no waiting; a
//! background probe, not a request, finds out when it is back.

use crate::metrics::Metrics;
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

/// A Redis command that takes longer is treated as a failure: the request path must not hang
/// on a half-dead Redis.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
/// How long Redis is skipped after the first failure; doubled after each failed probe up to
/// [`MAX_BACKOFF`], so a long outage is probed rarely and a blip is over within a second.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the background probe looks at the breaker.
const PROBE_TICK: Duration = Duration::from_millis(100);
/// The lifetime of the key the health probe writes.
const PROBE_KEY_TTL_MS: u64 = 10_000;

/// The circuit breaker's state: closed (`open_until` is `None`) or open until a time.
#[derive(Debug, Default)]
struct Circuit {
    open_until: Option<Instant>,
    backoff: Duration,
}

pub struct Redis {
    client: redis::Client,
    connection: RwLock<Option<ConnectionManager>>,
    circuit: Mutex<Circuit>,
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
            circuit: Mutex::new(Circuit::default()),
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

    /// Whether the breaker is open: Redis failed recently and is not to be asked.
    fn is_open(&self) -> bool {
        // `down` is set exactly when the circuit holds an `open_until`: one atomic load on
        // every command instead of a lock.
        self.down.load(Ordering::Acquire)
    }

    /// Runs one command with the timeout, recording Redis health either way. While the
    /// breaker is open this fails at once, without touching the network.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.is_open() {
            return Err(RedisUnavailable::Error("circuit open".into()));
        }
        self.attempt(command).await
    }

    async fn attempt<T, F, Fut>(&self, command: F) -> Result<T, RedisUnavailable>
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

    /// Starts the background probe that closes the breaker once Redis answers again. It
    /// stops when the last handle to this connection is dropped.
    pub fn start_probe(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_TICK).await;
                let Some(redis) = weak.upgrade() else { return };
                if redis.probe_due() {
                    // A fresh connection: the old handle may be the broken one.
                    if let Ok(mut guard) = redis.connection.write() {
                        *guard = None;
                    }
                    let _ = redis.attempt(redis.write_probe()).await;
                }
            }
        });
    }

    /// Whether the breaker is open and its back-off has passed.
    fn probe_due(&self) -> bool {
        self.circuit()
            .open_until
            .is_some_and(|at| Instant::now() >= at)
    }

    /// The circuit, locked. `down` changes only under this lock, together with the circuit,
    /// so the two cannot disagree (a breaker marked down with no back-off to end it would
    /// never be probed again).
    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mark_up(&self) {
        // Every successful command comes here: lock the circuit only when it was open.
        if !self.down.load(Ordering::Acquire) {
            return;
        }
        let mut circuit = self.circuit();
        if self.down.swap(false, Ordering::AcqRel) {
            *circuit = Circuit::default();
            drop(circuit);
            tracing::warn!("redis is reachable again; shared state restored");
            self.metrics.redis_fallback.set(0);
        }
    }

    fn mark_down(&self, error: &RedisUnavailable) {
        self.metrics.redis_errors.inc();
        let mut circuit = self.circuit();
        let backoff = match circuit.open_until {
            // A failed probe: wait longer before the next.
            Some(_) => (circuit.backoff * 2).min(MAX_BACKOFF),
            None => MIN_BACKOFF,
        };
        circuit.backoff = backoff;
        circuit.open_until = Some(Instant::now() + backoff);
        let was_down = self.down.swap(true, Ordering::AcqRel);
        drop(circuit);
        if !was_down {
            tracing::warn!(%error, "redis unreachable; falling back to in-process state (degraded)");
            self.metrics.redis_fallback.set(1);
        }
    }

    /// Checks Redis now (for readiness); `false` at once while the breaker is open.
    pub async fn ping(&self) -> bool {
        self.run(self.write_probe()).await.is_ok()
    }

    /// A short-lived write, not a PING: a read-only replica (a failover the vault's address
    /// did not follow) or a Redis out of memory answers PING, yet refuses every write the
    /// nonce store and the limiter make, and the breaker would flap between the two.
    fn write_probe(
        &self,
    ) -> impl FnOnce(ConnectionManager) -> BoxFuture<'static, redis::RedisResult<()>> {
        let key = self.key(&["probe"]);
        move |mut c| {
            Box::pin(async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(PROBE_KEY_TTL_MS)
                    .query_async::<()>(&mut c)
                    .await
            })
        }
    }
}
